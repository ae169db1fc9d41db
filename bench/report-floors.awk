# The top of bench/RESULTS.md after the machine table: the floors of this
# machine (so that runs on different machines compare through ratios) and
# the targets of issue 15 against them (items 1 and 2).  Loaded by
# bench/run.sh after its report program, whose helpers (has, m, f, rf,
# ratio, cell, row3, why) and arrays (med, n, note, p90, p99) it uses and
# which calls floors_section() and targets15_section().

function frow(name, id, how) {
	print "| " name " | " row3(id) " | " how " |"
}

function floors_section() {
	print "## Floors of this machine"
	print ""
	print "Measured in this run; every target of issue 15 below is a ratio to these."
	print ""
	print "| floor | median | p90 | p99 | n | how |"
	print "|---|---|---|---|---|---|"
	frow("ring-3 exit", "floor_pio3_1v", "an OUT to an unclaimed port from ring 3, timed in the guest (kvmi-vm, tool attached, 1 vCPU)")
	frow("ring-0 exit", "floor_pio0_1v", "the same OUT from ring 0")
	frow("spinning IPC round trip", "ipc_unix_rtt_spin", "AF_UNIX 64-byte ping-pong between two processes, both polling the socket (no VM)")
	frow("sleeping IPC round trip", "ipc_unix_rtt", "the same with blocking reads")
	frow("one vCPU ioctl, idle vCPU", "ioctl_get_msrs", "KVM_GET_MSRS of the 9 MSRs of an event header on a vCPU that never ran")
	print "| one vCPU ioctl in an event’s path, after a ring-3 exit | " cell("ioctl_cost_event_pf_write") " | | | | the engine’s own ioctls in the pre-write PF path, timed by kvmi-vm around each (census below) |"
	print "| one vCPU ioctl in an event’s path, after a ring-0 exit | " cell("ioctl_cost_event_msr") " | | | | the same in the MSR-write path |"
	print ""
}

# Item 1: one event's row.  @bare: the id of the bare exit of the same kind
# (its census id without _1v).
function ev15(name, ev, bare,    id, oh, oh2, k, c, ent, fl, r, ok, rest, reason) {
	id = ev "_1v"
	if (!has(id) || n[id] == 0) {
		print "| " name " | n/a | | | | | | | **not measurable**: " why(id) " |"
		return
	}
	if (!has(bare "_1v") || !has("ioctls_" ev) || !has("ioctls_" bare) || !has("ipc_unix_rtt_spin")) {
		print "| " name " | " cell(id) " | " cell(bare "_1v") " | | | | | | **not measurable**: the census of ioctls or a floor is missing (" why("ioctls_" ev) ") |"
		return
	}
	oh = m(id) - m(bare "_1v")
	k = m("ioctls_" ev) - m("ioctls_" bare)
	c = has("ioctl_cost_" ev) ? m("ioctl_cost_" ev) : m("ioctl_get_msrs")
	# every exit is followed by one entry; more per event are extra
	# entries of the event's path (an execute step)
	ent = m("entries_" ev) - 1
	fl = m("ipc_unix_rtt_spin") + k * c
	r = oh / fl
	ok = r <= 1.5
	rest = oh - fl
	reason = sprintf("%s µs beyond the floor", f(rest))
	if (ent >= 0.5)
		reason = reason sprintf("; the path also enters the guest %s more time(s) per event than the bare exit (an entry and its exit: a bare exit is %s µs)", f(ent), cell(bare "_1v"))
	if (has(id "_spin200") && n[id "_spin200"] > 0 && has(bare "_1v_spin200")) {
		oh2 = m(id "_spin200") - m(bare "_1v_spin200")
		reason = reason sprintf("; with every wait spinning up to 200 µs instead of 50 (KVMI_SPIN_US=200, same run) the overhead is %s µs (%s the floor)%s", f(oh2), rf(oh2 / fl), oh - oh2 >= 0.2 * oh ? sprintf(": %s µs of it are waits that ran out of their 50 µs spin and slept", f(oh - oh2)) : "")
	}
	reason = reason "; the rest is not broken down by this run"
	if (ev == "event_pf_exec")
		reason = reason "; the page is mapped back and removed again around the step with every other vCPU held: memslot changes by the VMM, not in this count of the engine’s vCPU ioctls"
	print "| " name " | " cell(id) " | " cell(bare "_1v") " | " f(oh) " | " f(k) " | " f(c) " | " f(fl) " | " rf(r) " | " (ok ? "**met**" : "**missed**: " reason) " |"
	n15++
	met15 += ok
}

# @vcpu: the command runs as a job on the vCPU's thread (the census counts
# its ioctls there).
function cmd15(name, id, vcpu,    r, reason, k) {
	if (!has(id) || n[id] == 0 || !has("ipc_unix_rtt_spin")) {
		print "| " name " | n/a | | | **not measurable**: " why(id) " |"
		return
	}
	r = m(id) / m("ipc_unix_rtt_spin")
	reason = f(m(id) - 2 * m("ipc_unix_rtt_spin")) " µs beyond 2 round trips"
	if (vcpu && has("ioctls_" id) && unit["ioctls_" id] != "n/a") {
		k = m("ioctls_" id)
		reason = reason sprintf("; a vCPU command runs as a job on the paused vCPU’s thread, which issues %s vCPU ioctl(s) for it (kvmi-vm’s count)%s", f(k), k > 0 && has("ioctl_cost_" id) ? sprintf(" at %s µs each: %s µs", cell("ioctl_cost_" id), f(k * m("ioctl_cost_" id))) : "")
	} else if (!vcpu) {
		reason = reason "; served on the VMM’s introspection thread (no vCPU ioctl)"
	}
	reason = reason "; the rest is not broken down by this run"
	if (has("ipc_unix_rtt") && m("ipc_unix_rtt") > 3 * m("ipc_unix_rtt_spin"))
		reason = reason sprintf(" (a sleeping IPC round trip took %s µs in this run against %s spinning: a thread that sleeps costs that much to wake here)", cell("ipc_unix_rtt"), cell("ipc_unix_rtt_spin"))
	print "| " name " | " cell(id) " | " cell("ipc_unix_rtt_spin") " | " rf(r) " | " (r <= 2 ? "**met**" : "**missed**: " reason) " |"
}

function batch15(name, id, one,    r) {
	if (!has(id) || n[id] == 0 || !has(one) || n[one] == 0) {
		print "| " name " | n/a | | | **not measurable**: " why(id) " |"
		return
	}
	r = m(id) / m(one)
	print "| " name " | " cell(id) " | " cell(one) " | " rf(r) " | " (r <= 4 ? "**met**" : "**missed**") " |"
}

function targets15_section() {
	print "## Targets of issue 15"
	print ""
	print "### Item 1: event overhead ≤ 1.5 × its floor"
	print ""
	print "Overhead = the event’s round trip − the bare exit of the same kind (same VM, timed the"
	print "same way: §1). Floor = one spinning IPC round trip + k × the cost of one vCPU ioctl, where"
	print "k is what the event’s path issues beyond its bare exit and the cost is that of the same"
	print "ioctls in the same path. Both are counted by kvmi-vm itself: every KVM ioctl the engine"
	print "issues is tallied per thread with its time (src/common/kvm_ioctl.h), and at debug level"
	print "kvmi-vm logs the tally before each guest entry; a census VM runs each benchmark with 20"
	print "and with 80 events and divides the differences (set-up cancels out). 1 vCPU, µs."
	print ""
	print "| event | round trip | bare exit | overhead | k ioctls | µs per ioctl | floor | overhead ÷ floor | verdict |"
	print "|---|---|---|---|---|---|---|---|---|"
	ev15("PAUSE_VCPU (ring 3)", "event_pause", "floor_pio3")
	ev15("PF read (ring 3)", "event_pf_read", "floor_pio3")
	ev15("PF write (ring 3)", "event_pf_write", "floor_pio3")
	ev15("PF exec (ring 3)", "event_pf_exec", "floor_pio3")
	ev15("MSR write (ring 0)", "event_msr", "floor_pio0")
	ev15("single-step (ring 0; timed by the tool)", "event_singlestep", "floor_pio0")
	ev15("breakpoint (ring 0; bare exit: the same int3 with the event off)", "event_breakpoint", "int3_noevent")
	ev15("CR write", "event_cr", "floor_pio0")
	print ""
	print "The census (ioctls per event or command, guest entries preceded by engine ioctls per event,"
	print "µs per ioctl; the bare exits and the commands are counted the same way):"
	print ""
	for (i = 1; i <= nids; i++) {
		id = order[i]
		if (id ~ /^ioctls_/) {
			e = substr(id, 8)
			if (unit[id] == "n/a")
				print "- " e ": " note[id]
			else
				print "- " e ": " f(m(id)) " ioctls, " cell("entries_" e) " entries, " cell("ioctl_cost_" e) " µs per ioctl (" note[id] ")"
		}
	}
	print ""
	print "### Item 2: command round trips ≤ 2 × the spinning IPC round trip; 16 commands ≤ 4 × one"
	print ""
	print "vCPU 0 paused (its PAUSE_VCPU event held), one command per round trip through the client"
	print "library (§2 for READ_PHYSICAL). µs."
	print ""
	print "| command | round trip | spinning IPC round trip | ratio | verdict (≤ 2×) |"
	print "|---|---|---|---|---|"
	cmd15("GET_REGISTERS", "cmd_get_registers", 1)
	cmd15("READ_PHYSICAL 8 B", "read_phys_8b", 0)
	cmd15("READ_PHYSICAL 4 KiB", "read_phys_4k", 0)
	cmd15("TRANSLATE_GVA", "cmd_translate_gva", 1)
	print ""
	print "Sixteen commands at once. A batch is the client library’s `kvmi_batch_*`: one write holding"
	print "CONTROL_CMD_RESPONSE (replies off), the sixteen commands, CONTROL_CMD_RESPONSE (replies on),"
	print "whose one reply ends the wait, so commands that return data cannot be batched; here sixteen"
	print "CONTROL_EVENTS on vCPU 0. Commands that return data are pipelined instead: sixteen"
	print "READ_PHYSICAL of 4 KiB on the wire at once (`kvmi_dom_read_physical_bulk`)."
	print ""
	print "| sixteen commands | time | one command of the kind | ratio | verdict (≤ 4×) |"
	print "|---|---|---|---|---|"
	batch15("16 CONTROL_EVENTS, one kvmi_batch", "cmd_batch16", "cmd_control_events")
	batch15("16 READ_PHYSICAL 4 KiB, pipelined", "cmd_read_phys_16x4k", "read_phys_4k")
	print ""
}
