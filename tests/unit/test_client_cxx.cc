// Unit test: the client header <kvmi/kvmi.h> compiles as C++ and links
// against the C library (extern "C" linkage, no C-only constructs).  TAP.
#include <kvmi/kvmi.h>

#include <cstdio>
#include <cstring>

static_assert(sizeof(struct kvmi_event) == 544, "common event part");
static_assert(sizeof(((struct kvmi_event_msg *)0)->specific.pf) == 24, "pf in the union");

int main()
{
	struct kvmi_config cfg;
	struct kvmi_listener *l = nullptr;
	bool ok;

	std::memset(&cfg, 0, sizeof(cfg));
	cfg.size = sizeof(cfg);
	ok = std::strcmp(kvmi_command_name(KVMI_GET_REGISTERS), "GET_REGISTERS") == 0 &&
	     std::strcmp(kvmi_event_name(KVMI_EVENT_PF), "PF") == 0 &&
	     kvmi_listener_open("bogus:", &cfg, &l) == -EINVAL && l == nullptr;
	std::printf("1..1\n%s 1 - kvmi.h from C++\n", ok ? "ok" : "not ok");
	return ok ? 0 : 1;
}
