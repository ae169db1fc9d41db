# The scale section of bench/RESULTS.md (issue 15, item 4): one tool
# thread serving 1..32 kvmi-vm guests (bench/scale.c).  Loaded by
# bench/run.sh after its report program, whose helpers (has, m, f, rf,
# ratio, cell, why, row3) and arrays (med, n, note, p90, p99) it uses and
# which calls scale_targets() and scale_section().  Ids: scale_*_TAG, TAG
# the guest count (1a, 1b, 1c: one guest alone, three different guests).

function sc_tags() { return "1a 1b 1c 2 4 8 16 32" }
function sc_n(tag) { return tag ~ /^1/ ? 1 : tag + 0 }

# The first guest count whose processes (tool + every kvmi-vm) keep at
# least 90 % of the CPUs busy; 0 if none.
function sc_saturation(    t, k, nt) {
	nt = split(sc_tags(), t, " ")
	for (k = 1; k <= nt; k++)
		if (has("scale_cpu_" t[k]) && m("scale_cpu_" t[k]) >= 0.9 * ncpu)
			return sc_n(t[k])
	return 0
}

# Aggregate rate of @tag against @tag's guest count × the median alone.
function sc_ratio(tag) {
	if (!has("scale_rate_" tag) || !has("scale_alone") || m("scale_alone") <= 0)
		return -1
	return m("scale_rate_" tag) / (sc_n(tag) * m("scale_alone"))
}

function sc_cpu(tag) {
	if (!has("scale_cpu_" tag))
		return "CPU time not measured"
	return sprintf("%s of %d CPUs busy (tool %s, kvmi-vm %s), the tool %s µs of CPU per event", f(m("scale_cpu_" tag)), ncpu, f(m("scale_tcpu_" tag)), f(m("scale_cpu_" tag) - m("scale_tcpu_" tag)), cell("scale_tus_" tag))
}

function scale_targets(    sat, t, k, nt, r, id, what, diff, lim) {
	print "### Targets of issue 15 (item 4)"
	print ""
	print "| target | measured | verdict |"
	print "|---|---|---|"
	if (!has("scale_alone")) {
		print "| one tool, 32 guests: aggregate ≥ 0.8 × the sum alone | n/a | **not measurable**: " why("phase_scale") " |"
		print "| introspection’s memory per guest in kvmi-vm ≤ 2 MiB | n/a | **not measurable**: " why("phase_scale") " |"
		print ""
		return
	}
	sat = sc_saturation()
	nt = split(sc_tags(), t, " ")
	for (k = 4; k <= nt; k++) {
		r = sc_ratio(t[k])
		what = "aggregate PF events/s ≥ 0.8 × " t[k] " × one guest alone, " t[k] " guests"
		if (r < 0) {
			print "| " what " | n/a | **not measurable**: " why("scale_rate_" t[k]) " |"
			continue
		}
		if (sat && t[k] + 0 > sat) {
			print "| " what " | " rf(r) " | past the saturation point (" sat " guests): not judged; " sc_cpu(t[k]) " |"
			continue
		}
		print "| " what " | " rf(r) " | " (r >= 0.8 ? "**met**" : "**missed**: " sc_cpu(t[k]) "; one guest alone: " sc_cpu("1a")) " |"
	}
	if (has("scale_vm_rss_tool") && has("scale_vm_rss_none")) {
		diff = m("scale_vm_rss_tool") - m("scale_vm_rss_none")
		lim = 2048
		print "| introspection’s memory per guest in kvmi-vm ≤ 2 MiB (RssAnon + RssFile, with a tool − without) | " sprintf("%.0f KiB (%.0f − %.0f KiB), %s of 2 MiB", diff, m("scale_vm_rss_tool"), m("scale_vm_rss_none"), rf(diff > 0 ? diff / lim : 0)) " | " (diff <= lim ? "**met**" : "**missed**") " |"
	} else
		print "| introspection’s memory per guest in kvmi-vm ≤ 2 MiB | n/a | **not measurable**: " why("scale_vm_rss_tool") " |"
	print "| CPU saturation point (informative) | " (sat ? sat " guest" (sat > 1 ? "s" : "") : "not reached with 32 guests") " | the first guest count whose tool and kvmi-vm processes keep ≥ 90 % of the " ncpu " CPUs busy |"
	print ""
}

function scale_section(    t, k, nt, tag) {
	print "## 7. One tool, many guests"
	print ""
	scale_targets()
	if (!has("scale_alone"))
		return
	print "One tool process on the client library serves N kvmi-vm guests (1 vCPU, 64 MiB RAM each) from"
	print "one thread that waits on every domain’s event descriptor (`kvmi_dom_event_fd()`, epoll). Each"
	print "guest stores in a ring-3 loop to its write-protected page; the tool answers every pre-write PF"
	print "event with CONTINUE. The 32 guests start once and wait parked (a PAUSE_VCPU event held, since"
	print "the idle bench guest spins); a round releases N of them, answers for 0.2 s, then measures 1.5 s."
	print "Latencies are timed by the guests (a timed store, as in §1), only stores whose events fell in"
	print "the window. CPU: utime + stime of the tool and of all 32 kvmi-vm over the window ÷ wall time;"
	print "the machine’s /proc/stat next to it (other load shows there). One guest alone: three runs on"
	print "three guests, their median (" cell("scale_alone") " events/s: " note["scale_alone"] ")"
	print "× N is the sum the aggregate is compared with."
	print ""
	print "| guests | events/s | N × alone | ratio | p50 | p90 | p99 | n | CPUs busy: tool + kvmi-vm | tool | machine | tool RSS (KiB) |"
	print "|---|---|---|---|---|---|---|---|---|---|---|---|"
	nt = split(sc_tags(), t, " ")
	for (k = 1; k <= nt; k++) {
		tag = t[k]
		if (!has("scale_rate_" tag))
			continue
		print "| " (tag ~ /^1/ ? "1 (alone, run " substr(tag, 2) ")" : tag) " | " cell("scale_rate_" tag) " | " f(sc_n(tag) * m("scale_alone")) " | " rf(sc_ratio(tag)) " | " row3("scale_lat_" tag) " | " cell("scale_cpu_" tag) " | " cell("scale_tcpu_" tag) " | " cell("scale_mcpu_" tag) " | " cell("scale_trss_" tag) " |"
	}
	print ""
	print "Memory (RssAnon + RssFile of /proc/PID/status, i.e. without the guest RAM, which is a memfd"
	print "counted in RssShmem): kvmi-vm without `--introspector` " cell("scale_vm_rss_none") " KiB (" note["scale_vm_rss_none"] "); with a tool"
	print cell("scale_vm_rss_tool") " KiB (" note["scale_vm_rss_tool"] "). The tool’s own RSS grows by " cell("scale_tool_rss_per_guest") " KiB per guest served"
	print "(each domain: a 128 KiB read buffer, a reader thread, its event descriptor)."
	print ""
}
