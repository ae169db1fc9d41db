# The QEMU frontend's section of bench/RESULTS.md (issue 11, item 7):
# stock QEMU through kvmi-qemu next to kvmi-vm, every figure next to the
# floor measured in the same VM of the same run, as a ratio.  Loaded by
# bench/run.sh after its report program, whose helpers (has, m, f, rf,
# ratio, cell, why) and arrays (med, n, unit, note, mn, mx) it uses and
# which calls qemu_section().  QEMU's event and memory figures carry the
# suffix _qemu; the quiet ones name their variant (quiet.c).

# "median | floor | ratio" for @id against @floor; a figure that could not
# be measured says why.
function qcells(id, floor) {
	if (has(id) && n[id] > 0)
		return f(m(id)) " | " (floor != "" ? cell(floor) : "") " | " (floor != "" ? rf(ratio(id, floor)) : "")
	if (has(id))
		return "not measurable: " note[id] " | | "
	return "not run | | "
}

# One row: kvmi-vm's figure and QEMU's (suffix _qemu), each with its floor:
# the same figure of QEMU's VM, or @qfloor (a floor without a VM).
function qrow(name, id, floor, qfloor) {
	if (qfloor == "" && floor != "")
		qfloor = floor "_qemu"
	print "| " name " | " qcells(id, floor) " | " qcells(id "_qemu", qfloor) " |"
}

function pct(x) { return sprintf("%+.2f %%", x) }

# The library's cost on a quiet guest, variant @sfx against stock QEMU.
function qquiet(what, sfx,    id, idm, ok, meas) {
	id = "quiet_work_overhead_min" sfx
	idm = "quiet_work_overhead" sfx
	if (!has(id) || n[id] == 0) {
		print "| " what " | n/a | **not measurable**: " why(id) " |"
		return
	}
	ok = m(id) <= 1
	meas = sprintf("%.4f× (%s), median of %d rounds (fastest repetition per VM); per-round ratios %.3f× … %.3f×; with the median repetition per VM %s (rounds %.3f× … %.3f×)", 1 + m(id) / 100, pct(m(id)), n[id], 1 + mn[id] / 100, 1 + mx[id] / 100, has(idm) ? pct(m(idm)) : "n/a", 1 + mn[idm] / 100, 1 + mx[idm] / 100)
	if (ok)
		print "| " what " | " meas " | **met**" (mx[id] > 1 ? ", within this host’s noise: single rounds go above 1 %" : "") " |"
	else
		print "| " what " | " meas " | **missed**: the median round is above 1 %; single rounds range " pct(mn[id]) " … " pct(mx[id]) ", see the per-exit cost below |"
}

function qemu_targets() {
	print "### Targets of issue 11 (item 7)"
	print ""
	print "| target | measured (kvmi-qemu ÷ stock QEMU) | verdict |"
	print "|---|---|---|"
	qquiet("library cost on a quiet guest ≤ 1 %, no tool", "_qemu_lib")
	qquiet("library cost on a quiet guest ≤ 1 %, a tool attached, nothing enabled", "_qemu_tool")
	if (has("quiet_pio3_overhead_qemu_lib") && n["quiet_pio3_overhead_qemu_lib"] > 0)
		print "| cost per ring-3 port-I/O exit (informative) | no tool " pct(m("quiet_pio3_overhead_qemu_lib")) " (" cell("quiet_pio3_qemu_plain") " → " cell("quiet_pio3_qemu_lib") " µs), tool attached " pct(m("quiet_pio3_overhead_qemu_tool")) " (→ " cell("quiet_pio3_qemu_tool") " µs) | per-round ratios " pct(mn["quiet_pio3_overhead_qemu_lib"]) " … " pct(mx["quiet_pio3_overhead_qemu_lib"]) " and " pct(mn["quiet_pio3_overhead_qemu_tool"]) " … " pct(mx["quiet_pio3_overhead_qemu_tool"]) " |"
	print ""
}

# Where QEMU's floor differs from kvmi-vm's: stock QEMU's own exit, from
# the quiet VMs.
function qemu_exit_note(    r) {
	if (!has("floor_pio3_1v_qemu") || n["floor_pio3_1v_qemu"] == 0 || !has("quiet_pio3_qemu_plain"))
		return
	r = ratio("floor_pio3_1v_qemu", "quiet_pio3_qemu_plain")
	printf "A ring-3 port-I/O exit costs %s µs in this QEMU VM (library and tool) and %s µs in stock QEMU without the library (the quiet VMs below, %s), against %s µs under kvmi-vm%s; each event ratio is against its own VM’s floor.\n", cell("floor_pio3_1v_qemu"), cell("quiet_pio3_qemu_plain"), rf(r), cell("floor_pio3_1v"), (r > 0.9 && r < 1.1 ? ": the difference is QEMU’s own exit path on this host, not the library" : "")
	print ""
}

function qemu_events() {
	print "### Event round trips, 1 vCPU"
	print ""
	print "Timed as in §1, each against the bare exit of the same kind in the same VM: kvmi-vm’s VM of"
	print "§1 and one QEMU VM through kvmi-qemu with the tool attached."
	print ""
	print "| event | kvmi-vm | its floor | ratio | QEMU (kvmi-qemu) | its floor | ratio |"
	print "|---|---|---|---|---|---|---|"
	qrow("bare port-I/O exit, ring 3 (floor)", "floor_pio3_1v", "")
	qrow("bare port-I/O exit, ring 0 (floor)", "floor_pio0_1v", "")
	qrow("PAUSE_VCPU", "event_pause_1v", "floor_pio3_1v")
	qrow("pre-write PF", "event_pf_write_1v", "floor_pio3_1v")
	qrow("pre-read PF", "event_pf_read_1v", "floor_pio3_1v")
	qrow("pre-exec PF", "event_pf_exec_1v", "floor_pio3_1v")
	qrow("MSR write", "event_msr_1v", "floor_pio0_1v")
	qrow("single-step (timed by the tool)", "event_singlestep_1v", "floor_pio0_1v")
	qrow("ring-0 int3, BREAKPOINT off (floor)", "int3_noevent_1v", "")
	qrow("breakpoint", "event_breakpoint_1v", "int3_noevent_1v")
	qrow("CR write", "event_cr_1v", "")
	print ""
	qemu_exit_note()
}

function qemu_memory() {
	print "### Guest memory reads"
	print ""
	print "The vCPU paused, as in §2; the floors are the same run’s process_vm_readv of the same VMM"
	print "(one call per read) and memcpy between two host buffers."
	print ""
	print "| read | kvmi-vm | its floor | ratio | QEMU (kvmi-qemu) | its floor | ratio |"
	print "|---|---|---|---|---|---|---|"
	qrow("READ_PHYSICAL 8 B, µs (floor: process_vm_readv 8 B)", "read_phys_8b", "pvr_8b")
	qrow("READ_PHYSICAL 4 KiB, µs (floor: process_vm_readv 4 KiB)", "read_phys_4k", "pvr_4k")
	qrow("READ_PHYSICAL 64 MiB one at a time, MB/s (floor: memcpy)", "read_phys_64m", "memcpy_64m")
	qrow("READ_PHYSICAL 64 MiB pipelined, MB/s (floor: memcpy)", "read_phys_64m_batched", "memcpy_64m")
	qrow("map one page: two commands + mmap + munmap, µs (floor: spinning AF_UNIX round trip, no VM)", "mapped_setup",
	     "ipc_unix_rtt_spin", "ipc_unix_rtt_spin")
	qrow("mapped reads 64 MiB, MB/s (floor: memcpy)", "mapped_64m", "memcpy_64m")
	qrow("mapped reads, scattered 4 KiB, MB/s (floor: memcpy of the same)", "mapped_4k", "memcpy_4k")
	print ""
}

function qemu_quiet_row(name, v) {
	print "| " name " | " cell("quiet_work_" v) " | " (has("quiet_work_" v) ? f(mn["quiet_work_" v]) : "n/a") " | " cell("quiet_pio3_" v) " |"
}

function qemu_quiet() {
	print "### Quiet guest: the library’s cost"
	print ""
	print "One vCPU runs 20 repetitions of the ring-3 workload of §5 with an OUT to the idle port after"
	print "every 500,000 steps (about a thousand exits per second of work, a timer tick’s worth), then"
	print "2,000 port-I/O exits. " (has("quiet_work_overhead_min_qemu_lib") ? n["quiet_work_overhead_min_qemu_lib"] : "n/a") " rounds of three VMs — stock QEMU, QEMU through kvmi-qemu without a tool, the same"
	print "with a tool attached that enabled nothing — back to back, the order rotating from round to"
	print "round; each VM is compared with the stock QEMU of its round. Per round, in %:"
	print ""
	print "- " why("quiet_work_overhead_min_qemu_lib")
	print "- " why("quiet_work_overhead_min_qemu_tool")
	print ""
	print "| VM | workload, median repetition (µs) | fastest repetition (µs) | ring-3 port-I/O exit (µs) |"
	print "|---|---|---|---|"
	qemu_quiet_row("stock QEMU", "qemu_plain")
	qemu_quiet_row("kvmi-qemu, no tool", "qemu_lib")
	qemu_quiet_row("kvmi-qemu, tool attached, nothing enabled", "qemu_tool")
	print ""
}

function qemu_section() {
	print "## 6. The QEMU frontend"
	print ""
	print qver " with libkvmi-qemu.so (`kvmi-qemu -- qemu-system-x86_64 -M q35 -enable-kvm"
	print "-cpu EPYC -m 256` with a memfd memory backend), booting the same guest as a `-bios` image"
	print "(bench_guest.bios, made by tests/guest/qemu’s rule); the tool is the same client library."
	print ""
	if (has("phase_qemu")) {
		print note["phase_qemu"] "."
		print ""
		return
	}
	qemu_targets()
	qemu_events()
	qemu_memory()
	qemu_quiet()
}
