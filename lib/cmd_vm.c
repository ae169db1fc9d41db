/* Client library: VM-scoped commands (no kvmi_vcpu_hdr), plus pausing.
 *
 * Each function builds exactly the request libkvmi builds for the matching
 * call (checked byte for byte by tests/unit/test_client_vectors.c). */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int simple(struct kvmi_dom *dom, uint16_t id, const void *req, size_t req_size,
		  void *rpl, size_t rpl_size)
{
	struct iovec iov = { .iov_base = (void *)req, .iov_len = req_size };

	return kc_command(dom, id, &iov, req_size ? 1 : 0, rpl, rpl_size, NULL);
}

int kvmi_dom_check_command(struct kvmi_dom *dom, uint16_t id)
{
	struct kvmi_check_command req = { .id = id };

	return simple(dom, KVMI_CHECK_COMMAND, &req, sizeof(req), NULL, 0);
}

int kvmi_dom_check_event(struct kvmi_dom *dom, uint16_t id)
{
	struct kvmi_check_event req = { .id = id };

	return simple(dom, KVMI_CHECK_EVENT, &req, sizeof(req), NULL, 0);
}

int kvmi_dom_get_guest_info(struct kvmi_dom *dom, uint32_t *vcpu_count)
{
	struct kvmi_get_guest_info_reply rpl;
	int err = simple(dom, KVMI_GET_GUEST_INFO, NULL, 0, &rpl, sizeof(rpl));

	if (!err && vcpu_count)
		*vcpu_count = rpl.vcpu_count;
	return err;
}

int kvmi_dom_control_vm_events(struct kvmi_dom *dom, uint16_t event_id, bool enable)
{
	struct kvmi_control_vm_events req = { .event_id = event_id, .enable = enable };

	return simple(dom, KVMI_CONTROL_VM_EVENTS, &req, sizeof(req), NULL, 0);
}

int kvmi_dom_read_physical(struct kvmi_dom *dom, uint64_t gpa, void *buf, size_t size)
{
	struct kvmi_read_physical req = { .gpa = gpa, .size = size };

	if (!buf && size)
		return -EINVAL;
	/* The reply (error code + data) must fit the u16 size field. */
	if (size > UINT16_MAX - sizeof(struct kvmi_error_code))
		return -E2BIG;
	return simple(dom, KVMI_READ_PHYSICAL, &req, sizeof(req), buf, size);
}

int kvmi_dom_write_physical(struct kvmi_dom *dom, uint64_t gpa, const void *buf,
			    size_t size)
{
	struct kvmi_write_physical req = { .gpa = gpa, .size = size };
	struct iovec iov[2] = {
		{ .iov_base = &req, .iov_len = sizeof(req) },
		{ .iov_base = (void *)buf, .iov_len = size },
	};

	if (!buf && size)
		return -EINVAL;
	/* libkvmi lets the u16 size field wrap here; we refuse instead. */
	return kc_command(dom, KVMI_WRITE_PHYSICAL, iov, size ? 2 : 1, NULL, 0, NULL);
}

/* Shared with batch.c: SET_PAGE_ACCESS payload, malloc'd. */
int kc_build_page_access(const uint64_t *gpa, const uint8_t *access, unsigned int count,
			 uint16_t view, void **out, size_t *out_size)
{
	struct kvmi_set_page_access *req;
	struct kvmi_page_access_entry *e;
	size_t size;

	if (!gpa || !access || count == 0)
		return -EINVAL;
	size = sizeof(*req) + (size_t)count * sizeof(*e);
	if (count > UINT16_MAX || size > KVMI_MSG_SIZE)
		return -E2BIG;
	req = calloc(1, size);
	if (!req)
		return -ENOMEM;
	req->view = view;
	req->count = (uint16_t)count;
	e = (struct kvmi_page_access_entry *)(req + 1);
	for (unsigned int i = 0; i < count; i++) {
		e[i].gpa = gpa[i];
		e[i].access = access[i];
	}
	*out = req;
	*out_size = size;
	return 0;
}

int kvmi_dom_set_page_access(struct kvmi_dom *dom, const uint64_t *gpa,
			     const uint8_t *access, unsigned int count, uint16_t view)
{
	void *req;
	size_t size;
	int err = kc_build_page_access(gpa, access, count, view, &req, &size);

	if (err)
		return err;
	err = simple(dom, KVMI_SET_PAGE_ACCESS, req, size, NULL, 0);
	free(req);
	return err;
}

int kvmi_dom_get_map_token(struct kvmi_dom *dom, struct kvmi_map_mem_token *token)
{
	struct kvmi_get_map_token_reply rpl;
	int err = simple(dom, KVMI_GET_MAP_TOKEN, NULL, 0, &rpl, sizeof(rpl));

	if (!err && token)
		*token = rpl.token;
	return err;
}

int kvmi_dom_get_max_gfn(struct kvmi_dom *dom, uint64_t *gfn)
{
	struct kvmi_get_max_gfn_reply rpl;
	int err = simple(dom, KVMI_GET_MAX_GFN, NULL, 0, &rpl, sizeof(rpl));

	if (!err && gfn)
		*gfn = rpl.gfn;
	return err;
}

int kvmi_dom_pause_vcpu(struct kvmi_dom *dom, uint16_t vcpu, bool wait)
{
	struct kvmi_pause_vcpu req = { .wait = wait };

	return kc_vcpu_command(dom, KVMI_PAUSE_VCPU, vcpu, &req, sizeof(req), NULL, 0, NULL);
}

int kvmi_dom_pause_vcpus(struct kvmi_dom *dom, unsigned int count)
{
	struct kvmi_batch *b;
	int err;

	if (count == 0)
		return 0;      /* like libkvmi: nothing sent, no seq used */
	if (count > UINT16_MAX + 1u)
		return -EINVAL;
	err = kvmi_batch_new(dom, &b);
	if (err)
		return err;
	for (unsigned int i = 0; i < count && !err; i++)
		err = kvmi_batch_pause_vcpu(b, (uint16_t)i, true);
	if (!err)
		err = kvmi_batch_submit(b);
	kvmi_batch_destroy(b);
	return err;
}

int kvmi_dom_pause_all(struct kvmi_dom *dom, unsigned int *count)
{
	uint32_t n;
	int err = kvmi_dom_get_guest_info(dom, &n);

	if (err)
		return err;
	err = kvmi_dom_pause_vcpus(dom, n);
	if (!err && count)
		*count = n;
	return err;
}
