/* Client library: zero-copy guest memory (GET_MAP_TOKEN + the kvmi
 * extension KVMI_X_MAP_MEMORY).
 *
 * The VMM answers KVMI_X_MAP_MEMORY with the guest-RAM file descriptor
 * attached to the reply; whoever reads the socket (recv.c) hands it to the
 * one command waiting for it and closes every other descriptor.  Here the
 * descriptor is mapped MAP_SHARED and closed at once: the mapping keeps
 * the memory alive, and no descriptor outlives the call. */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE_MASK ((uint64_t)KVMI_PAGE_SIZE - 1)

static bool bad_range(uint64_t gpa, size_t len)
{
	return !len || ((gpa | (uint64_t)len) & PAGE_MASK) || gpa + len < gpa;
}

int kvmi_dom_map_physical_token(struct kvmi_dom *dom, const struct kvmi_map_mem_token *token,
				uint64_t gpa, size_t len, int prot, void **addr)
{
	struct kvmi_x_map_memory req = { .gpa = gpa, .length = len };
	struct kvmi_x_map_memory_reply rpl;
	struct iovec iov = { .iov_base = &req, .iov_len = sizeof(req) };
	struct stat st;
	size_t received;
	void *p;
	int fd, err;

	if (!addr)
		return -EINVAL;
	*addr = NULL;
	if (!token || bad_range(gpa, len) || (prot != PROT_READ && prot != (PROT_READ | PROT_WRITE)))
		return -EINVAL;
	req.token = *token;
	if (!(prot & PROT_WRITE))
		req.flags = KVMI_X_MAP_READONLY;
	err = kc_command_fd(dom, KVMI_X_MAP_MEMORY, &iov, 1, &rpl, sizeof(rpl), &received, &fd);
	if (err)
		return err;
	/* A success must carry the descriptor and describe the range asked
	 * for, inside the file: a short file would SIGBUS the tool later. */
	if (fd < 0 || received < sizeof(rpl) || rpl.length != len || (rpl.fd_offset & PAGE_MASK) ||
	    fstat(fd, &st) || rpl.fd_offset > (uint64_t)st.st_size ||
	    len > (uint64_t)st.st_size - rpl.fd_offset) {
		kc_log(&dom->cfg, KVMI_LOG_ERROR, "%s: malformed KVMI_X_MAP_MEMORY reply",
		       dom->hello.name);
		if (fd >= 0)
			close(fd);
		return -EBADMSG;
	}
	p = mmap(NULL, len, prot, MAP_SHARED, fd, (off_t)rpl.fd_offset);
	err = p == MAP_FAILED ? -errno : 0;
	close(fd);
	if (err)
		return err;
	*addr = p;
	return 0;
}

int kvmi_dom_map_physical(struct kvmi_dom *dom, uint64_t gpa, size_t len, int prot, void **addr)
{
	struct kvmi_map_mem_token token;
	int err;

	if (!addr)
		return -EINVAL;
	*addr = NULL;
	if (bad_range(gpa, len) || (prot != PROT_READ && prot != (PROT_READ | PROT_WRITE)))
		return -EINVAL;
	err = kvmi_dom_get_map_token(dom, &token);
	if (!err)
		err = kvmi_dom_map_physical_token(dom, &token, gpa, len, prot, addr);
	explicit_bzero(&token, sizeof(token));
	return err;
}

int kvmi_dom_unmap_physical(void *addr, size_t len)
{
	if (!addr || !len)
		return -EINVAL;
	return munmap(addr, len) ? -errno : 0;
}
