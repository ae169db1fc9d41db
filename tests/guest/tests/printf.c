/* SPDX-License-Identifier: MIT */
/*
 * The runtime's vsnprintf against known answers (in ring 3, where it runs
 * natively), then one GUEST_PRINTF line that guest-tests.sh matches exactly.
 */
#include "guest.h"

#define CHECK(expect, ...)                                                   \
	do {                                                                 \
		char b[128];                                                 \
		int n = guest_snprintf(b, sizeof(b), __VA_ARGS__);           \
		GUEST_ASSERT_MSG(!strcmp(b, expect), "got \"%s\", want \"%s\"", b, expect); \
		GUEST_ASSERT_EQ(n, strlen(expect));                          \
	} while (0)

static uint64_t ring3_checks(void *arg)
{
	const char *volatile no_string = NULL;
	char small[8];
	int n;

	(void)arg;
	CHECK("42", "%d", 42);
	CHECK("-42", "%d", -42);
	CHECK("-2147483648", "%d", (int)0x80000000u);
	CHECK("4294967295", "%u", 0xffffffffu);
	CHECK("ff FF 0xff 0", "%x %X %#x %#x", 255u, 255u, 255u, 0u);
	CHECK("ffffffffffffffff", "%lx", ~0ul);
	CHECK("123456789abcdef0", "%llx", 0x123456789abcdef0ull);
	CHECK("-9223372036854775808", "%lld", (long long)0x8000000000000000ull);
	CHECK("18446744073709551615", "%llu", ~0ull);
	CHECK("0x1000", "%p", (void *)0x1000);
	CHECK("abc|  abc|abc  |ab", "%s|%5s|%-5s|%.2s", "abc", "abc", "abc", "abc");
	CHECK("(null)", "%s", no_string);
	CHECK("x|  y", "%c|%3c", 'x', 'y');
	CHECK("   42|42   |00042|-0042|+42| 42", "%5d|%-5d|%05d|%05d|%+d|% d", 42, 42, 42, -42, 42, 42);
	CHECK("007|  007", "%.3d|%5.3d", 7, 7);
	CHECK("17 0x11 021", "%zu %#zx %#o", (size_t)17, (size_t)17, 17u);
	CHECK("-1 255 65535", "%hhd %hhu %hu", (signed char)-1, (unsigned char)255, (unsigned short)65535);
	CHECK("    7|7    ", "%*d|%-*d", 5, 7, 5, 7);
	CHECK("100%", "%d%%", 100);
	/* Truncation keeps the terminator and returns the full length. */
	n = guest_snprintf(small, sizeof(small), "%s", "0123456789");
	GUEST_ASSERT_EQ(n, 10);
	GUEST_ASSERT(!strcmp(small, "0123456"));
	GUEST_PRINTF("printf: %d %u %x %lx %llx %s %c %p", -7, 42u, 0xbeefu, 0xdeadbeefcafeul,
		     0x123456789abcdef0ull, "str", 'c', (void *)0x100000);
	return 1;
}

void guest_main(unsigned nr_vcpus, unsigned vcpu)
{
	(void)nr_vcpus;
	(void)vcpu;
	GUEST_ASSERT_EQ(run_in_ring3(ring3_checks, NULL), 1);
	GUEST_DONE();
}
