/* Client library: vCPU-scoped commands (payload starts with kvmi_vcpu_hdr).
 *
 * Each function builds exactly the request libkvmi builds for the matching
 * call (checked byte for byte by tests/unit/test_client_vectors.c). */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int kvmi_dom_get_vcpu_info(struct kvmi_dom *dom, uint16_t vcpu, uint64_t *tsc_speed_hz)
{
	struct kvmi_get_vcpu_info_reply rpl;
	int err = kc_vcpu_command(dom, KVMI_GET_VCPU_INFO, vcpu, NULL, 0,
				  &rpl, sizeof(rpl), NULL);

	if (!err && tsc_speed_hz)
		*tsc_speed_hz = rpl.tsc_speed;
	return err;
}

int kvmi_dom_control_events(struct kvmi_dom *dom, uint16_t vcpu, uint16_t event_id,
			    bool enable)
{
	struct kvmi_control_events req = { .event_id = event_id, .enable = enable };

	return kc_vcpu_command(dom, KVMI_CONTROL_EVENTS, vcpu, &req, sizeof(req), NULL, 0, NULL);
}

int kvmi_dom_control_cr(struct kvmi_dom *dom, uint16_t vcpu, uint32_t cr, bool enable)
{
	struct kvmi_control_cr req = { .enable = enable, .cr = cr };

	return kc_vcpu_command(dom, KVMI_CONTROL_CR, vcpu, &req, sizeof(req), NULL, 0, NULL);
}

int kvmi_dom_control_msr(struct kvmi_dom *dom, uint16_t vcpu, uint32_t msr, bool enable)
{
	struct kvmi_control_msr req = { .enable = enable, .msr = msr };

	return kc_vcpu_command(dom, KVMI_CONTROL_MSR, vcpu, &req, sizeof(req), NULL, 0, NULL);
}

int kvmi_dom_control_singlestep(struct kvmi_dom *dom, uint16_t vcpu, bool enable)
{
	struct kvmi_control_singlestep req = { .enable = enable };

	return kc_vcpu_command(dom, KVMI_VCPU_CONTROL_SINGLESTEP, vcpu, &req, sizeof(req),
			       NULL, 0, NULL);
}

int kvmi_dom_get_registers(struct kvmi_dom *dom, uint16_t vcpu,
			   struct kvmi_x86_regs *regs, struct kvmi_x86_sregs *sregs,
			   struct kvmi_x86_msr_entry *msrs, unsigned int nmsrs,
			   uint32_t *mode)
{
	struct kvmi_get_registers *req;
	struct kvmi_get_registers_reply *rpl;
	size_t req_size, rpl_size, received;
	uint32_t *idx;
	int err;

	if (nmsrs && !msrs)
		return -EINVAL;
	req_size = sizeof(*req) + (size_t)nmsrs * sizeof(uint32_t);
	rpl_size = sizeof(*rpl) + (size_t)nmsrs * sizeof(struct kvmi_x86_msr_entry);
	if (nmsrs > UINT16_MAX || rpl_size + sizeof(struct kvmi_error_code) > UINT16_MAX)
		return -E2BIG;

	req = calloc(1, req_size);
	rpl = malloc(rpl_size);
	if (!req || !rpl) {
		err = -ENOMEM;
		goto out;
	}
	req->nmsrs = (uint16_t)nmsrs;
	idx = (uint32_t *)(req + 1);
	for (unsigned int i = 0; i < nmsrs; i++)
		idx[i] = msrs[i].index;

	err = kc_vcpu_command(dom, KVMI_GET_REGISTERS, vcpu, req, req_size,
			      rpl, rpl_size, &received);
	if (err)
		goto out;
	/* Without every requested MSR the answer cannot be trusted. */
	if (received < rpl_size) {
		err = -EPROTO;
		goto out;
	}
	if (regs)
		*regs = rpl->regs;
	if (sregs)
		*sregs = rpl->sregs;
	if (mode)
		*mode = rpl->mode;
	if (nmsrs)
		memcpy(msrs, rpl + 1, (size_t)nmsrs * sizeof(*msrs));
out:
	free(req);
	free(rpl);
	return err;
}

int kvmi_dom_set_registers(struct kvmi_dom *dom, uint16_t vcpu,
			   const struct kvmi_x86_regs *regs)
{
	if (!regs)
		return -EINVAL;
	return kc_vcpu_command(dom, KVMI_SET_REGISTERS, vcpu, regs, sizeof(*regs), NULL, 0, NULL);
}

int kvmi_dom_get_cpuid(struct kvmi_dom *dom, uint16_t vcpu, uint32_t function,
		       uint32_t index, struct kvmi_get_cpuid_reply *leaf)
{
	struct kvmi_get_cpuid req = { .function = function, .index = index };
	struct kvmi_get_cpuid_reply rpl;
	int err = kc_vcpu_command(dom, KVMI_GET_CPUID, vcpu, &req, sizeof(req),
				  &rpl, sizeof(rpl), NULL);

	if (!err && leaf)
		*leaf = rpl;
	return err;
}

int kvmi_dom_get_xsave(struct kvmi_dom *dom, uint16_t vcpu, void *buf, size_t size,
		       size_t *received)
{
	if (!buf && size)
		return -EINVAL;
	return kc_vcpu_command(dom, KVMI_GET_XSAVE, vcpu, NULL, 0, buf, size, received);
}

int kvmi_dom_set_xsave(struct kvmi_dom *dom, uint16_t vcpu, const void *buf, size_t size)
{
	if (!buf || !size)
		return -EINVAL;
	if (size > KVMI_MSG_SIZE - sizeof(struct kvmi_vcpu_hdr))
		return -E2BIG;
	return kc_vcpu_command(dom, KVMI_VCPU_SET_XSAVE, vcpu, buf, size, NULL, 0, NULL);
}

int kvmi_dom_get_xcr(struct kvmi_dom *dom, uint16_t vcpu, uint8_t xcr, uint64_t *value)
{
	struct kvmi_get_xcr req = { .xcr = xcr };
	struct kvmi_get_xcr_reply rpl;
	int err = kc_vcpu_command(dom, KVMI_VCPU_GET_XCR, vcpu, &req, sizeof(req),
				  &rpl, sizeof(rpl), NULL);

	if (!err && value)
		*value = rpl.value;
	return err;
}

int kvmi_dom_inject_exception(struct kvmi_dom *dom, uint16_t vcpu, uint8_t vector,
			      uint32_t error_code, uint64_t address)
{
	struct kvmi_inject_exception req = {
		.nr = vector, .error_code = error_code, .address = address,
	};

	return kc_vcpu_command(dom, KVMI_INJECT_EXCEPTION, vcpu, &req, sizeof(req),
			       NULL, 0, NULL);
}

int kvmi_dom_get_mtrr_type(struct kvmi_dom *dom, uint64_t gpa, uint8_t *type)
{
	struct kvmi_get_mtrr_type req = { .gpa = gpa };
	struct kvmi_get_mtrr_type_reply rpl;
	int err = kc_vcpu_command(dom, KVMI_GET_MTRR_TYPE, 0, &req, sizeof(req),
				  &rpl, sizeof(rpl), NULL);

	if (!err && type)
		*type = rpl.type;
	return err;
}

int kvmi_dom_translate_gva(struct kvmi_dom *dom, uint16_t vcpu, uint64_t gva,
			   uint64_t *gpa)
{
	struct kvmi_translate_gva req = { .gva = gva };
	struct kvmi_translate_gva_reply rpl;
	int err = kc_vcpu_command(dom, KVMI_VCPU_TRANSLATE_GVA, vcpu, &req, sizeof(req),
				  &rpl, sizeof(rpl), NULL);

	if (!err && gpa)
		*gpa = rpl.gpa;
	return err;
}
