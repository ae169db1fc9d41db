/* SPDX-License-Identifier: MIT */
/*
 * engine.c - creating the engine: what this host's KVM can deliver (MSR
 * filter, guest debugging, the int3 path, BPF hooks), the protocol server
 * on top, the connection thread; and what a tool's session start and end
 * mean for the VM.
 */
#include "kvm_ioctl.h"
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bpf_events.h"
#include "util.h"

#define DEFAULT_UNHOOK_TIMEOUT_MS 5000

static int check_cap(struct kvmi_engine *e, long cap)
{
	return kvm_ioctl(e->cfg.kvm_fd, KVM_CHECK_EXTENSION, cap);
}

static bool enable_cap(struct kvmi_engine *e, uint32_t cap, uint64_t arg)
{
	struct kvm_enable_cap c = { .cap = cap, .args = { arg } };

	return kvm_ioctl(e->cfg.vm_fd, KVM_ENABLE_CAP, &c) == 0;
}

static void probe_host(struct kvmi_engine *e)
{
	int dbg2 = check_cap(e, KVM_CAP_SET_GUEST_DEBUG2);
	int sync = kvm_ioctl(e->cfg.vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS);

	e->have_sync_regs = sync > 0 && (sync & (KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS)) ==
						 (KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS);
	/* MSR events: writes exit to userspace through the MSR filter. */
	e->have_msr_filter = check_cap(e, KVM_CAP_X86_MSR_FILTER) > 0 &&
			     enable_cap(e, KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_FILTER);
	e->have_singlestep = check_cap(e, KVM_CAP_SET_GUEST_DEBUG) > 0;
	e->have_blockirq = dbg2 > 0 && (dbg2 & KVM_GUESTDBG_BLOCKIRQ);
	/* An instruction fetch from a removed page fails emulation.  Without
	 * this KVM answers that with a #UD straight into the guest at CPL > 0
	 * (and queues one besides the exit at CPL 0). */
	e->exit_on_emulation_failure = check_cap(e, KVM_CAP_EXIT_ON_EMULATION_FAILURE) > 0 &&
				       enable_cap(e, KVM_CAP_EXIT_ON_EMULATION_FAILURE, 1);
	e->bp_path = e->have_singlestep ? kvmi_probe_int3(e->cfg.kvm_fd) : KVMI_INT3_NONE;
	e->npt = kvmi_probe_nested_paging();
	pr_info("introspection: MSR events %s, single-step %s%s, breakpoints through %s",
		e->have_msr_filter ? "available" : "unavailable", e->have_singlestep ? "available" : "unavailable",
		e->have_singlestep && !e->have_blockirq ? " (interrupts not blocked while stepping)" : "",
		kvmi_int3_path_name(e->bp_path));
}

static void server_log(void *ctx, enum kvmi_srv_log_level level, const char *msg)
{
	(void)ctx;
	switch (level) {
	case KVMI_SRV_LOG_ERROR: pr_err("introspection: %s", msg); break;
	case KVMI_SRV_LOG_WARN:  pr_warn("introspection: %s", msg); break;
	case KVMI_SRV_LOG_INFO:  pr_info("introspection: %s", msg); break;
	default:                 pr_debug("introspection: %s", msg); break;
	}
}

static int create_server(struct kvmi_engine *e)
{
	struct kvmi_server_config sc;
	struct timespec ts;

	memset(&sc, 0, sizeof(sc));
	sc.ops = &eng_backend_ops;
	sc.backend = &e->backend;
	sc.max_vcpus = e->cfg.max_vcpus;
	sc.policy = &e->cfg.policy;
	memcpy(sc.uuid, e->cfg.uuid, sizeof(sc.uuid));
	memcpy(sc.name, e->cfg.name, sizeof(sc.name));
	clock_gettime(CLOCK_REALTIME, &ts);
	sc.start_time_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	sc.max_gpa = eng_max_gfn(e) << 12;
	sc.key = e->key;
	sc.key_len = e->cfg.key_len;
	sc.handshake_timeout_ms = e->cfg.handshake_timeout_ms;
	sc.log = server_log;
	return kvmi_server_create(&sc, &e->srv);
}

int kvmi_engine_create(const struct kvmi_engine_config *cfg, struct kvmi_engine **out)
{
	struct kvmi_engine *e;
	int err = -ENOMEM;

	if (!cfg->ops || !cfg->ops->kick || !cfg->ops->request_stop || !cfg->ops->slot_alloc ||
	    !cfg->ops->slot_free || !cfg->ops->slot_set || !cfg->max_vcpus)
		return -EINVAL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->cfg = *cfg;
	e->ops = cfg->ops;
	e->host = cfg->host;
	e->backend.e = e;
	e->step_vcpu = -1;
	atomic_store(&e->stepper, -1);
	kvmi_rwlock_init(&e->pt_lock, KVMI_RANK_PAGETRACK, "page tracker");
	pagetrack_init(&e->pt);
	kvmi_map_tokens_init(&e->tokens, 0);
	e->vcpus = calloc(cfg->max_vcpus, sizeof(*e->vcpus));
	if (!e->vcpus || eng_msr_init(e))
		goto err;
	if (cfg->key_len) {
		e->key = malloc(cfg->key_len);
		if (!e->key)
			goto err;
		memcpy(e->key, cfg->key, cfg->key_len);
		e->cfg.key = e->key;
	}
	/* kvm_fd < 0: an engine without KVM for unit tests (no probes, no
	 * capabilities, no BPF). */
	if (cfg->kvm_fd >= 0)
		probe_host(e);
	err = create_server(e);
	if (err) {
		pr_err("introspection: cannot create the server: %s", strerror(-err));
		goto err;
	}
	if (cfg->kvm_fd >= 0) {
		e->bpf = bpf_events_create(e);
		eng_ptwalk_init(e);
	}
	*out = e;
	return 0;

err:
	kvmi_engine_destroy(e);
	return err;
}

/*
 * The introspection thread wakes for every command and event reply and runs
 * for microseconds.  With vCPU threads busy in guest mode on every CPU,
 * EEVDF lets a woken thread wait until the running one's slice is used up
 * (up to a scheduler tick, 4 ms here).  A short slice (Linux 6.12 and later:
 * sched_runtime of a SCHED_OTHER thread) lets it preempt at once; older
 * kernels ignore the field.  Policy and nice stay as the VMM set them.
 */
#define INTRO_SLICE_NS 100000ull

struct slice_attr {              /* struct sched_attr, as far as we set it */
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
};

static void short_slice(void)
{
	struct slice_attr a;

	if (syscall(SYS_sched_getattr, 0, &a, sizeof(a), 0) < 0 || a.policy != 0 /* SCHED_OTHER */)
		return;
	a.size = sizeof(a);
	a.runtime = INTRO_SLICE_NS;
	if (syscall(SYS_sched_setattr, 0, &a, 0) < 0)
		pr_debug("introspection: no short scheduler slice for the introspection thread: %s",
			 strerror(errno));
}

static void *intro_thread(void *arg)
{
	struct kvmi_engine *e = arg;
	int err;

	short_slice();
	err = kvmi_server_run(e->srv, &e->cfg.addr);

	if (err)
		pr_err("introspection: connection loop failed: %s", strerror(-err));
	return NULL;
}

int kvmi_engine_start(struct kvmi_engine *e)
{
	int err = thread_start_blocked(&e->thread, intro_thread, e);

	e->thread_started = !err;
	return err;
}

bool kvmi_engine_unhook(struct kvmi_engine *e)
{
	int timeout, err;

	if (!e || !e->thread_started || !kvmi_server_connected(e->srv))
		return false;
	timeout = e->cfg.unhook_timeout_ms > 0 ? e->cfg.unhook_timeout_ms : DEFAULT_UNHOOK_TIMEOUT_MS;
	err = kvmi_server_unhook(e->srv, timeout);
	if (err == -ETIMEDOUT)
		pr_warn("introspection: the tool did not close the connection within %d ms after UNHOOK", timeout);
	return err != -ENOENT;
}

void kvmi_engine_stop(struct kvmi_engine *e)
{
	if (!e || !e->thread_started)
		return;
	kvmi_engine_unhook(e);
	kvmi_server_stop(e->srv);
	pthread_join(e->thread, NULL);
	e->thread_started = false;
}

void kvmi_engine_destroy(struct kvmi_engine *e)
{
	if (!e)
		return;
	kvmi_engine_stop(e);
	bpf_events_destroy(e->bpf);
	if (e->srv)
		kvmi_server_destroy(e->srv);
	eng_memory_destroy(e);
	for (unsigned i = 0; e->vcpus && i < e->cfg.max_vcpus; i++)
		if (e->vcpus[i])
			eng_vcpu_free(e->vcpus[i]);
	free(e->vcpus);
	eng_msr_destroy(e);
	kvmi_rwlock_destroy(&e->pt_lock);
	free(e->key);
	free(e);
}

/* ---- sessions ------------------------------------------------------------- */

void eng_session_start(struct kvmi_backend *b)
{
	struct kvmi_engine *e = b->e;

	pr_debug("introspection: session with a tool");
	atomic_fetch_add(&e->sessions, 1);
	atomic_store(&e->in_session, true);
}

/*
 * Everything the tool changed goes with it.  Waiting events were released
 * as CONTINUE by the server and pauses are events, so vCPUs are already on
 * their way back into the guest.  Mappings the tool made stay: they are
 * its own (docs/limitations.md); unredeemed map tokens die.
 */
void eng_session_end(struct kvmi_backend *b)
{
	struct kvmi_engine *e = b->e;

	pr_debug("introspection: session over; the guest keeps running");
	atomic_store(&e->in_session, false);
	kvmi_map_tokens_clear(&e->tokens);
	eng_memory_session_end(e);
	eng_msr_session_end(e);
	bpf_events_session_end(e->bpf);
	for (unsigned i = 0; i < atomic_load(&e->nr_vcpus); i++) {
		struct kvmi_engine_vcpu *v = e->vcpus[i];

		if (!v)
			continue;
		atomic_store(&v->tool_left, true);
		eng_kick(v);
		eng_wake(v);
	}
}
