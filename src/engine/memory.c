/* SPDX-License-Identifier: MIT */
/*
 * memory.c - guest RAM as the engine sees it: the frontend's regions, the
 * memslot layout that enforces a tool's page restrictions on them (kernel
 * slots through the host's slot ops), guest-physical access for commands,
 * SET_PAGE_ACCESS, QUERY_PHYSICAL and zero-copy map grants.
 *
 * Every slot change happens under pt_lock (write) with every vCPU held out
 * of guest mode: replacing a slot removes its pages for a moment, and a
 * guest page walk through a missing page table is fatal.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bpf_events.h"
#include "spin_wait.h"
#include "util.h"

/* ---- finding RAM ---------------------------------------------------- */

static struct ram_region *region_of(struct kvmi_engine *e, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < e->nr_regions; i++) {
		struct ram_region *r = &e->regions[i];

		if (gpa >= r->r.gpa && gpa - r->r.gpa <= r->r.size && len <= r->r.size - (gpa - r->r.gpa))
			return r;
	}
	return NULL;
}

static struct ram_region *region_at(struct kvmi_engine *e, uint64_t gpa)
{
	for (unsigned i = 0; i < e->nr_regions; i++)
		if (e->regions[i].r.gpa == gpa)
			return &e->regions[i];
	return NULL;
}

/* Regions change on the frontend's threads (QEMU remaps while the tool
 * reads): lookups take pt_lock for reading. */
void *eng_gpa_to_hva_locked(struct kvmi_engine *e, uint64_t gpa, uint64_t len)
{
	struct ram_region *r = region_of(e, gpa, len);

	return r ? (uint8_t *)r->r.hva + (gpa - r->r.gpa) : NULL;
}

void *eng_gpa_to_hva(struct kvmi_engine *e, uint64_t gpa, uint64_t len, uint32_t *flags)
{
	struct ram_region *r;
	void *p = NULL;

	kvmi_rwlock_rdlock(&e->pt_lock);
	r = region_of(e, gpa, len);
	if (r) {
		p = (uint8_t *)r->r.hva + (gpa - r->r.gpa);
		if (flags)
			*flags = r->r.flags;
	}
	kvmi_rwlock_unlock(&e->pt_lock);
	return p;
}

/* The host address of a segment of region r. */
static void *seg_hva(const struct ram_region *r, const struct pt_segment *s)
{
	return (uint8_t *)r->r.hva + (s->gpa - r->r.gpa);
}

int eng_read_phys(struct kvmi_engine *e, uint64_t gpa, void *buf, size_t len)
{
	void *p = eng_gpa_to_hva(e, gpa, len, NULL);

	if (!p)
		return -KVM_ENOENT;
	memcpy(buf, p, len);
	return 0;
}

int eng_write_phys(struct kvmi_engine *e, uint64_t gpa, const void *buf, size_t len)
{
	void *p = eng_gpa_to_hva(e, gpa, len, NULL);

	if (!p)
		return -KVM_ENOENT;
	memcpy(p, buf, len);
	if (e->ops->ram_written)
		e->ops->ram_written(e->host, gpa, len);
	return 0;
}

uint64_t eng_max_gfn(struct kvmi_engine *e)
{
	uint64_t end = 0;

	kvmi_rwlock_rdlock(&e->pt_lock);
	for (unsigned i = 0; i < e->nr_regions; i++)
		if (e->regions[i].r.gpa + e->regions[i].r.size > end)
			end = e->regions[i].r.gpa + e->regions[i].r.size;
	kvmi_rwlock_unlock(&e->pt_lock);
	return end >> 12;
}

/* QUERY_PHYSICAL: the RAM region holding gfn, as {first gfn, pages}. */
int eng_query_physical(struct kvmi_engine *e, uint64_t gfn, struct kvmi_query_physical_reply *rep)
{
	struct ram_region *r;
	int err = -KVM_ENOENT;

	kvmi_rwlock_rdlock(&e->pt_lock);
	r = gfn < (UINT64_MAX >> 12) ? region_of(e, gfn << 12, 1) : NULL;
	if (r) {
		rep->gfn = r->r.gpa >> 12;
		rep->size = r->r.size >> 12;
		err = 0;
	}
	kvmi_rwlock_unlock(&e->pt_lock);
	return err;
}

/* ---- rights ----------------------------------------------------------- */

/* A page another vCPU's execute step opened keeps its restriction for
 * everyone else.  pt_lock held. */
uint8_t eng_rights_for(struct kvmi_engine *e, uint64_t gfn, unsigned self)
{
	if (e->step_vcpu >= 0 && (unsigned)e->step_vcpu != self && gfn == e->step_gfn)
		return e->step_orig;
	return pagetrack_get(&e->pt, gfn);
}

void eng_step_superseded(struct kvmi_engine *e, const struct pt_entry *pe, size_t n)
{
	for (size_t i = 0; e->step_vcpu >= 0 && i < n; i++)
		if (pe[i].gfn == e->step_gfn)
			e->step_vcpu = -1;
	if (!n)
		e->step_vcpu = -1;
}

uint8_t eng_rights(struct kvmi_engine *e, uint64_t gfn, unsigned self)
{
	uint8_t r;

	kvmi_rwlock_rdlock(&e->pt_lock);
	r = eng_rights_for(e, gfn, self);
	kvmi_rwlock_unlock(&e->pt_lock);
	return r;
}

/* ---- the slot layout -------------------------------------------------- */

static bool same_segment(const struct pt_segment *a, const struct pt_segment *b)
{
	return a->gpa == b->gpa && a->size == b->size && a->kind == b->kind;
}

/* Index of segment s in layout v (sorted by gpa), or n if absent. */
static size_t layout_find(const struct pt_segment *v, size_t n, const struct pt_segment *s)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v[mid].gpa < s->gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && same_segment(&v[lo], s) ? lo : n;
}

/* Does a slot the region keeps use the region's own id? */
static bool own_id_kept(const struct ram_region *r)
{
	for (size_t i = 0; i < r->nr_layout; i++)
		if (r->slot_ids[i] == r->r.slot_id)
			return true;
	return false;
}

/* The region's own id serves its first slot (*own_used: taken already);
 * more come from the host. */
static int take_id(struct kvmi_engine *e, struct ram_region *r, bool *own_used, uint32_t *id)
{
	if (!*own_used) {
		*own_used = true;
		*id = r->r.slot_id;
		return 0;
	}
	return e->ops->slot_alloc(e->host, id);
}

static void put_id(struct kvmi_engine *e, struct ram_region *r, uint32_t id)
{
	if (id != r->r.slot_id)
		e->ops->slot_free(e->host, id);
}

/* Every KVM_SET_USER_MEMORY_REGION the engine asks for goes through here,
 * counted and timed for the debug log (pt_lock held for writing). */
static int slot_set(struct kvmi_engine *e, struct ram_region *r, const struct pt_segment *s, uint32_t id,
		    uint32_t flags, uint64_t size)
{
	uint64_t t0 = kvmi_spin_now_ns();
	int err = e->ops->slot_set(e->host, id, flags, s->gpa, size, seg_hva(r, s));

	e->slot_ioctls++;
	e->slot_ioctl_ns += kvmi_spin_now_ns() - t0;
	return err;
}

static int slot_del(struct kvmi_engine *e, struct ram_region *r, const struct pt_segment *s, uint32_t id)
{
	int err = slot_set(e, r, s, id, 0, 0);

	if (!err)
		put_id(e, r, id);
	return err;
}

static uint32_t slot_flags(const struct ram_region *r, const struct pt_segment *s)
{
	return r->r.flags | (s->kind == PT_MAP_RO ? KVM_MEM_READONLY : 0);
}

static int slot_add(struct kvmi_engine *e, struct ram_region *r, const struct pt_segment *s, bool *own_used,
		    uint32_t *id)
{
	int err = take_id(e, r, own_used, id);

	if (err)
		return err;
	err = slot_set(e, r, s, *id, slot_flags(r, s), s->size);
	if (err) {
		if (*id == r->r.slot_id)
			*own_used = false;
		put_id(e, r, *id);
		*id = UINT32_MAX;
	}
	return err;
}

/* Leaves the region consistent with what KVM has after a failed change:
 * the slots added for the new layout go again. */
static void undo_adds(struct kvmi_engine *e, struct ram_region *r, const struct pt_segment *nl,
		      const uint32_t *ids, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bool old = false;

		for (size_t j = 0; j < r->nr_layout; j++)
			old |= r->slot_ids[j] == ids[i];
		if (ids[i] != UINT32_MAX && !old)
			slot_del(e, r, &nl[i], ids[i]);
	}
}

/* Changes only the slots that differ: removals first, then additions
 * (KVM forbids overlapping slots). */
static int apply_region(struct kvmi_engine *e, struct ram_region *r, unsigned *removed, unsigned *added)
{
	struct pt_segment *nl;
	uint32_t *ids;
	bool own_used;
	size_t n;
	int err;

	err = pagetrack_layout(&e->pt, r->r.gpa, r->r.size, &nl, &n);
	if (err)
		return err;
	ids = malloc((n ? n : 1) * sizeof(*ids));
	if (!ids) {
		free(nl);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		ids[i] = UINT32_MAX;
	for (size_t i = 0; i < r->nr_layout; i++) {
		if (r->slot_ids[i] == UINT32_MAX || layout_find(nl, n, &r->layout[i]) < n)
			continue;
		err = slot_del(e, r, &r->layout[i], r->slot_ids[i]);
		if (err)
			goto fail;
		r->slot_ids[i] = UINT32_MAX;
		(*removed)++;
	}
	own_used = own_id_kept(r);
	for (size_t i = 0; i < n; i++) {
		size_t j;

		if (nl[i].kind == PT_HOLE)
			continue;
		j = layout_find(r->layout, r->nr_layout, &nl[i]);
		if (j < r->nr_layout && r->slot_ids[j] != UINT32_MAX) {
			ids[i] = r->slot_ids[j];        /* kept from the old layout */
			continue;
		}
		err = slot_add(e, r, &nl[i], &own_used, &ids[i]);
		if (err)
			goto fail;
		(*added)++;
	}
	free(r->layout);
	free(r->slot_ids);
	r->layout = nl;
	r->slot_ids = ids;
	r->nr_layout = n;
	return 0;

fail:
	undo_adds(e, r, nl, ids, n);
	free(nl);
	free(ids);
	return err;
}

/* Kernel slots the engine keeps for RAM now (pt_lock held). */
static unsigned slots_in_use(const struct kvmi_engine *e)
{
	unsigned n = 0;

	for (unsigned i = 0; i < e->nr_regions; i++)
		for (size_t k = 0; k < e->regions[i].nr_layout; k++)
			n += e->regions[i].slot_ids[k] != UINT32_MAX;
	return n;
}

int eng_apply_tracking(struct kvmi_engine *e, unsigned *removed, unsigned *added)
{
	unsigned rm = 0, ad = 0;
	int err = 0;

	for (unsigned i = 0; !err && i < e->nr_regions; i++)
		err = apply_region(e, &e->regions[i], &rm, &ad);
	if (removed)
		*removed = rm;
	if (added)
		*added = ad;
	return err;
}

/* The tracker takes pe, the page-walk hook's gfn map follows it (or the
 * tracker goes back as it was).  pt_lock held for writing. */
static int track(struct kvmi_engine *e, const struct pt_entry *pe, size_t n)
{
	struct pt_entry *old = malloc((n ? n : 1) * sizeof(*old));
	int err;

	if (!old)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		old[i] = (struct pt_entry){ pe[i].gfn, pagetrack_get(&e->pt, pe[i].gfn) };
	err = pagetrack_update(&e->pt, pe, n);
	if (!err && bpf_events_wp_update(e->bpf, &e->pt, pe, n)) {
		err = -ENOMEM;
		if (pagetrack_update(&e->pt, old, n) == 0)
			bpf_events_wp_update(e->bpf, &e->pt, old, n);
	}
	free(old);
	return err;
}

/* pt_lock held for writing, vCPUs held. */
static int set_access_locked(struct kvmi_engine *e, const struct pt_entry *pe, size_t n)
{
	unsigned removed = 0, added = 0;
	unsigned long ioctls = e->slot_ioctls;
	uint64_t ioctl_ns = e->slot_ioctl_ns;
	int err = eng_ptwalk_guard(e, pe, n);

	if (!err)
		err = track(e, pe, n);
	if (!err) {
		eng_step_superseded(e, pe, n);
		err = eng_apply_tracking(e, &removed, &added);
	}
	if (!err)
		pr_debug("introspection: SET_PAGE_ACCESS %zu entries: %u slots removed, %u added, %zu tracked pages, "
			 "memslots in use %u; %lu memslot ioctls in %.1f us", n, removed, added, e->pt.n,
			 slots_in_use(e), e->slot_ioctls - ioctls, (double)(e->slot_ioctl_ns - ioctl_ns) / 1e3);
	return err;
}

int eng_set_page_access(struct kvmi_engine *e, const struct pt_entry *pe, size_t n)
{
	int err;

	kvmi_engine_hold(e);
	kvmi_rwlock_wrlock(&e->pt_lock);
	err = set_access_locked(e, pe, n);
	kvmi_rwlock_unlock(&e->pt_lock);
	kvmi_engine_release(e);
	return err;
}

int eng_grant_w(struct kvmi_engine *e, uint64_t gfn)
{
	struct pt_entry pe = { gfn, 0 };
	int err = 0;

	kvmi_engine_hold(e);
	kvmi_rwlock_wrlock(&e->pt_lock);
	pe.access = pagetrack_get(&e->pt, gfn);
	if (!(pe.access & PT_W)) {
		pe.access |= PT_W;
		err = set_access_locked(e, &pe, 1);
	}
	kvmi_rwlock_unlock(&e->pt_lock);
	kvmi_engine_release(e);
	return err;
}

/* Every page restriction goes with the tool. */
void eng_memory_session_end(struct kvmi_engine *e)
{
	kvmi_engine_hold(e);
	kvmi_rwlock_wrlock(&e->pt_lock);
	eng_step_superseded(e, NULL, 0);
	if (e->pt.n) {
		pagetrack_clear(&e->pt);
		bpf_events_wp_clear(e->bpf);
		if (eng_apply_tracking(e, NULL, NULL))
			pr_err("introspection: cannot restore the guest's memory slots");
	}
	kvmi_rwlock_unlock(&e->pt_lock);
	kvmi_engine_release(e);
}

/* ---- regions ----------------------------------------------------------- */

static int region_insert(struct kvmi_engine *e, const struct kvmi_ram_region *rr)
{
	struct ram_region *nr = realloc(e->regions, (e->nr_regions + 1) * sizeof(*nr));
	struct ram_region *r;

	if (!nr)
		return -ENOMEM;
	e->regions = nr;
	r = &e->regions[e->nr_regions];
	memset(r, 0, sizeof(*r));
	r->r = *rr;
	if (rr->slot_exists) {
		/* Taken over as it is: one writable slot over the whole region. */
		r->layout = malloc(sizeof(*r->layout));
		r->slot_ids = malloc(sizeof(*r->slot_ids));
		if (!r->layout || !r->slot_ids) {
			free(r->layout);
			free(r->slot_ids);
			return -ENOMEM;
		}
		*r->layout = (struct pt_segment){ rr->gpa, rr->size, PT_MAP_RW };
		*r->slot_ids = rr->slot_id;
		r->nr_layout = 1;
	}
	e->nr_regions++;
	return 0;
}

static void region_drop(struct kvmi_engine *e, unsigned i)
{
	free(e->regions[i].layout);
	free(e->regions[i].slot_ids);
	memmove(&e->regions[i], &e->regions[i + 1], (e->nr_regions - i - 1) * sizeof(e->regions[0]));
	e->nr_regions--;
}

int kvmi_engine_region_add(struct kvmi_engine *e, const struct kvmi_ram_region *rr)
{
	unsigned rm = 0, ad = 0, slots;
	int err;

	if (!rr->size || (rr->gpa | rr->size) & 0xfff || rr->gpa + rr->size < rr->gpa)
		return -EINVAL;
	kvmi_engine_hold(e);
	kvmi_rwlock_wrlock(&e->pt_lock);
	err = region_insert(e, rr);
	if (!err) {
		err = apply_region(e, &e->regions[e->nr_regions - 1], &rm, &ad);
		if (err)
			region_drop(e, e->nr_regions - 1);
	}
	slots = slots_in_use(e);
	kvmi_rwlock_unlock(&e->pt_lock);
	kvmi_engine_release(e);
	if (err)
		pr_err("introspection: cannot register RAM at %#llx: %s", (unsigned long long)rr->gpa,
		       strerror(-err));
	else
		pr_debug("introspection: RAM region %#llx+%#llx added; memslots in use %u",
			 (unsigned long long)rr->gpa, (unsigned long long)rr->size, slots);
	return err;
}

int kvmi_engine_region_remove(struct kvmi_engine *e, uint64_t gpa)
{
	struct ram_region *r;
	int err = -ENOENT;

	kvmi_engine_hold(e);
	kvmi_rwlock_wrlock(&e->pt_lock);
	r = region_at(e, gpa);
	if (r) {
		err = 0;
		for (size_t k = 0; k < r->nr_layout && !err; k++) {
			if (r->slot_ids[k] != UINT32_MAX)
				err = slot_del(e, r, &r->layout[k], r->slot_ids[k]);
			if (!err)
				r->slot_ids[k] = UINT32_MAX;
		}
		if (!err)
			region_drop(e, (unsigned)(r - e->regions));
	}
	kvmi_rwlock_unlock(&e->pt_lock);
	kvmi_engine_release(e);
	return err;
}

int kvmi_engine_region_set_dirty_log(struct kvmi_engine *e, uint64_t gpa, bool on)
{
	struct ram_region *r;
	int err = -ENOENT;

	kvmi_rwlock_wrlock(&e->pt_lock);
	r = region_at(e, gpa);
	if (r) {
		err = 0;
		if (on)
			r->r.flags |= KVM_MEM_LOG_DIRTY_PAGES;
		else
			r->r.flags &= ~(uint32_t)KVM_MEM_LOG_DIRTY_PAGES;
		for (size_t k = 0; k < r->nr_layout && !err; k++) {
			const struct pt_segment *s = &r->layout[k];

			if (r->slot_ids[k] != UINT32_MAX)
				err = slot_set(e, r, s, r->slot_ids[k], slot_flags(r, s), s->size);
		}
	}
	kvmi_rwlock_unlock(&e->pt_lock);
	return err;
}

int kvmi_engine_region_slots(struct kvmi_engine *e, uint64_t gpa, struct kvmi_slot_piece *out, size_t max)
{
	struct ram_region *r;
	int n = -ENOENT;

	kvmi_rwlock_rdlock(&e->pt_lock);
	r = region_at(e, gpa);
	if (r) {
		n = 0;
		for (size_t k = 0; k < r->nr_layout; k++) {
			if (r->slot_ids[k] == UINT32_MAX)
				continue;
			if ((size_t)n < max)
				out[n] = (struct kvmi_slot_piece){ r->slot_ids[k], r->layout[k].gpa, r->layout[k].size };
			n++;
		}
	}
	kvmi_rwlock_unlock(&e->pt_lock);
	return n;
}

void eng_memory_destroy(struct kvmi_engine *e)
{
	while (e->nr_regions)
		region_drop(e, e->nr_regions - 1);
	free(e->regions);
	e->regions = NULL;
	pagetrack_destroy(&e->pt);
}

/* ---- map grants ---------------------------------------------------------- */

/*
 * KVMI_X_MAP_MEMORY: the tool gets the region's backing file itself, so its
 * mapping is the guest's RAM with no copy and no VMM involvement after this
 * call.  A read-only request gets a separate read-only open of the file,
 * so the tool cannot mprotect() its way to writing; and only of a file
 * whose mode lets nobody open it for writing (kvmi-vm makes it 0400), or
 * the tool could reopen its descriptor through /proc/self/fd with write
 * access.  The whole file is reachable through the descriptor: the range
 * check keeps honest tools inside RAM (docs/limitations.md,
 * docs/security.md).
 */
int eng_map_memory(struct kvmi_engine *e, const struct kvmi_map_mem_token *token, uint64_t gpa, uint64_t len,
		   bool readonly, int *fd, uint64_t *offset)
{
	struct ram_region *r;
	struct stat st;
	unsigned mode = 0;
	int err = 0, src, nfd = -1;
	uint64_t off;

	/* Token first: without one the tool learns nothing, not even the
	 * layout; a matched token is spent whatever follows. */
	err = kvmi_map_tokens_redeem(&e->tokens, token);
	if (err)
		return err;
	kvmi_rwlock_rdlock(&e->pt_lock);
	r = len ? region_of(e, gpa, len) : NULL;
	src = r ? r->r.fd : -1;
	off = r ? r->r.fd_offset + (gpa - r->r.gpa) : 0;
	if (src >= 0 && readonly) {
		mode = fstat(src, &st) ? 07777 : st.st_mode & 07777;
		if (mode & 0222)
			src = -2;      /* a reopen could write: refused below */
	}
	if (src >= 0) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/self/fd/%d", src);
		nfd = readonly ? open(path, O_RDONLY | O_CLOEXEC) : fcntl(src, F_DUPFD_CLOEXEC, 0);
		err = nfd < 0 ? errno : 0;
	}
	kvmi_rwlock_unlock(&e->pt_lock);
	if (!r)
		return -KVM_ENOENT;
	if (src == -2) {
		pr_err("introspection: no read-only grant: the guest RAM file has mode %04o, "
		       "a reopen could write (the frontend must make it 0400)", mode);
		return -KVM_EOPNOTSUPP;
	}
	if (src < 0)
		return -KVM_EOPNOTSUPP;    /* RAM without a file: READ_PHYSICAL only */
	if (err) {
		pr_err("introspection: cannot hand out guest memory: %s", strerror(err));
		return err == EMFILE || err == ENFILE || err == ENOMEM ? -KVM_ENOMEM : -KVM_EFAULT;
	}
	*fd = nfd;
	*offset = off;
	return 0;
}
