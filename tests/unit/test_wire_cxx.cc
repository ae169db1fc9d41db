// SPDX-License-Identifier: MIT
// test_wire_cxx.cc - the wire ABI header compiles alone as C++ and its
// static assertions hold there too.
#include <kvmi/kvmi-wire.h>

#include <cstdio>

static_assert(sizeof(kvmi_event) == 544, "kvmi_event");
static_assert(sizeof(kvmi_get_registers_reply) == 472, "get_registers reply");

int main()
{
	std::printf("ok 1 - kvmi-wire.h compiles as C++\n1..1\n");
	return 0;
}
