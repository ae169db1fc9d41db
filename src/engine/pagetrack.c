/* SPDX-License-Identifier: MIT */
/* Page-access tracker: a sorted array of restricted frames, batch merges,
 * and the memslot layout derived from it. */
#include "pagetrack.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void pagetrack_init(struct pagetrack *pt)
{
	memset(pt, 0, sizeof(*pt));
}

void pagetrack_destroy(struct pagetrack *pt)
{
	free(pt->e);
	memset(pt, 0, sizeof(*pt));
}

void pagetrack_clear(struct pagetrack *pt)
{
	pt->n = 0;
}

size_t pagetrack_lower_bound(const struct pagetrack *pt, uint64_t gfn)
{
	size_t lo = 0, hi = pt->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (pt->e[mid].gfn < gfn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

uint8_t pagetrack_get(const struct pagetrack *pt, uint64_t gfn)
{
	size_t i = pagetrack_lower_bound(pt, gfn);

	return i < pt->n && pt->e[i].gfn == gfn ? pt->e[i].access : PT_RWX;
}

struct indexed { struct pt_entry e; size_t order; };

static int cmp_indexed(const void *a, const void *b)
{
	const struct indexed *x = a, *y = b;

	if (x->e.gfn != y->e.gfn)
		return x->e.gfn < y->e.gfn ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

int pagetrack_update(struct pagetrack *pt, const struct pt_entry *changes, size_t n)
{
	struct indexed *c;
	struct pt_entry *out;
	size_t i = 0, j = 0, k = 0, m = 0;

	if (!n)
		return 0;
	c = malloc(n * sizeof(*c));
	out = malloc((pt->n + n) * sizeof(*out));
	if (!c || !out) {
		free(c);
		free(out);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++)
		c[i] = (struct indexed){ changes[i], i };
	qsort(c, n, sizeof(*c), cmp_indexed);
	/* Keep the last change per gfn. */
	for (i = 0; i < n; i++)
		if (i + 1 == n || c[i + 1].e.gfn != c[i].e.gfn)
			c[m++] = c[i];

	i = 0;
	while (i < pt->n || j < m) {
		struct pt_entry e;

		if (j == m || (i < pt->n && pt->e[i].gfn < c[j].e.gfn)) {
			out[k++] = pt->e[i++];
			continue;
		}
		e = c[j].e;
		e.access &= PT_RWX;
		if (i < pt->n && pt->e[i].gfn == e.gfn)
			i++; /* replaced */
		j++;
		if (e.access != PT_RWX)
			out[k++] = e;
	}
	free(c);
	free(pt->e);
	pt->e = out;
	pt->n = k;
	pt->cap = pt->n + n;
	return 0;
}

static int push(struct pt_segment **v, size_t *n, size_t *cap, uint64_t gpa, uint64_t size,
		enum pt_kind kind)
{
	if (*n && (*v)[*n - 1].kind == kind && (*v)[*n - 1].gpa + (*v)[*n - 1].size == gpa) {
		(*v)[*n - 1].size += size;
		return 0;
	}
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;
		struct pt_segment *nv = realloc(*v, nc * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = nc;
	}
	(*v)[(*n)++] = (struct pt_segment){ gpa, size, kind };
	return 0;
}

int pagetrack_layout(const struct pagetrack *pt, uint64_t gpa, uint64_t size,
		     struct pt_segment **out, size_t *n)
{
	uint64_t gfn = gpa >> 12, end = (gpa + size) >> 12;
	struct pt_segment *v = NULL;
	size_t cnt = 0, cap = 0;
	int err = 0;

	for (size_t i = pagetrack_lower_bound(pt, gfn); !err && i < pt->n && pt->e[i].gfn < end; i++) {
		if (pt->e[i].gfn > gfn)
			err = push(&v, &cnt, &cap, gfn << 12, (pt->e[i].gfn - gfn) << 12, PT_MAP_RW);
		if (!err)
			err = push(&v, &cnt, &cap, pt->e[i].gfn << 12, 4096, pt_kind_of(pt->e[i].access));
		gfn = pt->e[i].gfn + 1;
	}
	if (!err && gfn < end)
		err = push(&v, &cnt, &cap, gfn << 12, (end - gfn) << 12, PT_MAP_RW);
	if (err) {
		free(v);
		return err;
	}
	*out = v;
	*n = cnt;
	return 0;
}
