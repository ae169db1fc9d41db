/* SPDX-License-Identifier: MIT */
/* Statistics and result files shared by the benchmark programs (the VMM
 * driver is vmm.c). */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- misc */

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void sleep_us(unsigned us)
{
	struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

void die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

double *xmalloc_d(size_t n)
{
	double *p = malloc((n ? n : 1) * sizeof(double));

	if (!p)
		die("out of memory");
	return p;
}

void note(const char *fmt, ...)
{
	va_list ap;

	printf("  ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* ---------------------------------------------------------------- stats */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted @v. */
static double pct(const double *v, size_t n, double p)
{
	size_t k = (size_t)ceil(p / 100.0 * (double)n);

	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

void stats_of(double *v, size_t n, struct stats *s)
{
	double sum = 0;

	memset(s, 0, sizeof(*s));
	s->n = n;
	if (!n)
		return;
	qsort(v, n, sizeof(*v), cmp_double);
	for (size_t i = 0; i < n; i++)
		sum += v[i];
	s->min = v[0];
	s->max = v[n - 1];
	s->mean = sum / (double)n;
	/* The median of an even count is the mean of the middle two. */
	s->p50 = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	s->p90 = pct(v, n, 90);
	s->p99 = pct(v, n, 99);
}

/* ---------------------------------------------------------------- results */

static char out_dir[512] = ".";
static char id_suffix[32];      /* BENCH_ID_SUFFIX: a second run of a phase */

void result_init(void)
{
	const char *d = getenv("BENCH_OUT"), *sfx = getenv("BENCH_ID_SUFFIX");
	char p[600];

	if (sfx)
		snprintf(id_suffix, sizeof(id_suffix), "%s", sfx);
	if (d && *d)
		snprintf(out_dir, sizeof(out_dir), "%s", d);
	snprintf(p, sizeof(p), "%s/samples", out_dir);
	mkdir(out_dir, 0755);
	mkdir(p, 0755);
}

static void result_line(const char *id, const char *unit, const struct stats *s, const char *note_fmt,
			va_list ap)
{
	char path[600], text[512] = "";
	FILE *f;

	if (note_fmt)
		vsnprintf(text, sizeof(text), note_fmt, ap);
	for (char *c = text; *c; c++)
		if (*c == '\t' || *c == '\n')
			*c = ' ';
	snprintf(path, sizeof(path), "%s/results.tsv", out_dir);
	f = fopen(path, "a");
	if (!f)
		die("cannot append to %s: %s", path, strerror(errno));
	fprintf(f, "%s%s\t%s\t%zu\t%.6g\t%.6g\t%.6g\t%.6g\t%.6g\t%.6g\t%s\n", id, id_suffix, unit, s->n, s->p50,
		s->p90, s->p99, s->mean, s->min, s->max, text);
	fclose(f);
	if (s->n == 1)
		printf("  %-28s %10.3f %-5s %s\n", id, s->p50, unit, text);
	else if (s->n)
		printf("  %-28s %10.3f %-5s (p90 %.3f, p99 %.3f, n %zu)%s%s\n", id, s->p50, unit, s->p90,
		       s->p99, s->n, *text ? "  " : "", text);
	else
		printf("  %-28s %s\n", id, text);
	fflush(stdout);
}

void result_add(const char *id, const char *unit, const struct stats *s, const char *note_fmt, ...)
{
	va_list ap;

	va_start(ap, note_fmt);
	result_line(id, unit, s, note_fmt, ap);
	va_end(ap);
}

void result_samples(const char *id, const char *unit, double *v, size_t n, const char *note_fmt, ...)
{
	struct stats s;
	char path[600];
	va_list ap;
	FILE *f;

	stats_of(v, n, &s);
	va_start(ap, note_fmt);
	result_line(id, unit, &s, note_fmt, ap);
	va_end(ap);
	if (!n)
		return;
	snprintf(path, sizeof(path), "%s/samples/%s%s.dat", out_dir, id, id_suffix);
	f = fopen(path, "w");
	if (!f)
		die("cannot write %s: %s", path, strerror(errno));
	fprintf(f, "# %s (%s): value cumulative-fraction, %zu samples\n", id, unit, n);
	if (n <= 401) {
		for (size_t i = 0; i < n; i++)
			fprintf(f, "%.6g %.6g\n", v[i], (double)(i + 1) / (double)n);
	} else {
		for (unsigned q = 0; q <= 400; q++) {
			size_t i = (size_t)((double)(n - 1) * q / 400.0);

			fprintf(f, "%.6g %.6g\n", v[i], (double)(i + 1) / (double)n);
		}
	}
	fclose(f);
}

void result_na(const char *id, const char *why, ...)
{
	struct stats s = { 0 };
	va_list ap;

	va_start(ap, why);
	result_line(id, "n/a", &s, why, ap);
	va_end(ap);
}

void result_value(const char *id, const char *unit, double value, const char *note_fmt, ...)
{
	struct stats s = { .n = 1, .min = value, .p50 = value, .p90 = value, .p99 = value,
			   .max = value, .mean = value };
	va_list ap;

	va_start(ap, note_fmt);
	result_line(id, unit, &s, note_fmt, ap);
	va_end(ap);
}
