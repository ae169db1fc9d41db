# The scale section of bench/RESULTS.md (issue 15, item 4): one tool
# thread serving 1..32 kvmi-vm guests (bench/scale.c).  Loaded by
# bench/run.sh after its report program, whose helpers (has, m, f, rf,
# ratio, cell, why, row3) and arrays (med, n, note, p90, p99) it uses and
# which calls scale_section().  Ids: scale_*_TAG, TAG the guest count (1a,
# 1b, 1c: one guest alone, three different guests), with the suffix
# _nospin for the run with KVMI_SPIN_US=0.

function sc_tags() { return "1a 1b 1c 2 4 8 16 32" }
# Ids of the run in sx: "" (default) or "_nospin" (KVMI_SPIN_US=0).
function si(base, tag) { return "scale_" base "_" tag sx }
function sa() { return "scale_alone" sx }
function sc_n(tag) { return tag ~ /^1[a-c]$/ ? 1 : tag + 0 }

# The first guest count at which the machine's CPUs are ≥ 90 % busy
# (/proc/stat over the window); 0 if none.
function sc_saturation(    t, k, nt) {
	nt = split(sc_tags(), t, " ")
	for (k = 1; k <= nt; k++)
		if (has(si("mcpu", t[k])) && m(si("mcpu", t[k])) >= 0.9 * ncpu)
			return sc_n(t[k])
	return 0
}

# CPUs busy with something else than the tool and the kvmi-vm (the
# machine's figure less ours) in @tag's window.
function sc_other(tag) { return has(si("mcpu", tag)) ? m(si("mcpu", tag)) - m(si("cpu", tag)) : 0 }

# Other load in the alone runs or in @tag's round, said where it was
# more than a tenth of the CPUs.
function sc_load(tag,    t, k, s) {
	s = ""
	split("1a 1b 1c " tag, t, " ")
	for (k = 1; k <= 4; k++)
		if (sc_other(t[k]) >= 0.1 * ncpu && index(s, " " t[k] ":") == 0)
			s = s " " t[k] ": " f(sc_other(t[k]))
	return s == "" ? "" : "; other load on the machine (CPUs busy besides the tool and the kvmi-vm, by round):" s
}

# Aggregate rate of @tag against @tag's guest count × the median alone.
function sc_ratio(tag) {
	if (!has(si("rate", tag)) || !has(sa()) || m(sa()) <= 0)
		return -1
	return m(si("rate", tag)) / (sc_n(tag) * m(sa()))
}

# CPU time (tool + every kvmi-vm) per event answered, in µs.
function sc_cpu_per_event(tag) {
	if (!has(si("cpu", tag)) || !has(si("rate", tag)) || m(si("rate", tag)) <= 0)
		return -1
	return m(si("cpu", tag)) / m(si("rate", tag)) * 1e6
}

function sc_cpu(tag) {
	if (!has(si("cpu", tag)))
		return "CPU time not measured"
	return sprintf("%s of %d CPUs busy (tool %s, kvmi-vm %s): %s µs of CPU per event, the tool’s %s", f(m(si("cpu", tag))), ncpu, f(m(si("tcpu", tag))), f(m(si("cpu", tag)) - m(si("tcpu", tag))), f(sc_cpu_per_event(tag)), cell(si("tus", tag)))
}

# What @tag's guests need at the CPU cost of one guest alone (the mean of
# the alone runs' busy CPUs), where that is more than the machine has.
function sc_need(tag,    c, k, t, need) {
	c = 0
	split("1a 1b 1c", t, " ")
	for (k = 1; k <= 3; k++)
		c += m(si("cpu", t[k])) / 3
	need = sc_n(tag) * c
	if (need <= ncpu)
		return ""
	return sprintf("; at the alone runs’ %s CPUs per guest, %d guests would need %s of the %d CPUs: at most %s of the sum alone fits", f(c), sc_n(tag), f(need), ncpu, rf(ncpu / need))
}

# The ratio of @tag in the run with every wait sleeping, if it ran.
function sc_nospin(tag,    r) {
	sx = "_nospin"
	r = sc_ratio(tag)
	sx = ""
	return r < 0 ? "" : "; with every wait sleeping (KVMI_SPIN_US=0, same run): " rf(r)
}

function scale_targets(    sat, busy, t, k, nt, r, what, diff, lim) {
	print "### Targets of issue 15 (item 4)"
	print ""
	print "| target | measured | verdict |"
	print "|---|---|---|"
	if (!has(sa())) {
		print "| one tool, 32 guests: aggregate ≥ 0.8 × the sum alone | n/a | **not measurable**: " why("phase_scale") " |"
		print "| introspection’s memory per guest in kvmi-vm ≤ 2 MiB | n/a | **not measurable**: " why("phase_scale") " |"
		print ""
		return
	}
	sat = sc_saturation()
	busy = sc_load("1a")
	nt = split(sc_tags(), t, " ")
	for (k = 4; k <= nt; k++) {
		r = sc_ratio(t[k])
		what = "aggregate PF events/s ≥ 0.8 × " t[k] " × one guest alone, " t[k] " guests"
		if (r < 0) {
			print "| " what " | n/a | **not measurable**: " why(si("rate", t[k])) " |"
			continue
		}
		if (busy != "") {
			print "| " what " | " rf(r) " | **not measurable** in this run: the alone runs it is compared with shared the CPUs with other work" sc_load(t[k]) " |"
			continue
		}
		if (sat && t[k] + 0 > sat) {
			print "| " what " | " rf(r) " | past the saturation point (" sat " guest" (sat > 1 ? "s" : "") "): not judged; " sc_cpu(t[k]) "; one guest alone: " sc_cpu("1a") sc_load(t[k]) sc_nospin(t[k]) " |"
			continue
		}
		print "| " what " | " rf(r) " | " (r >= 0.8 ? "**met**" sc_load(t[k]) : "**missed**: " sc_cpu(t[k]) "; one guest alone: " sc_cpu("1a") sc_need(t[k]) sc_load(t[k]) sc_nospin(t[k])) " |"
	}
	if (has("scale_vm_rss_tool") && has("scale_vm_rss_none")) {
		diff = m("scale_vm_rss_tool") - m("scale_vm_rss_none")
		lim = 2048
		print "| introspection’s memory per guest in kvmi-vm ≤ 2 MiB (RssAnon + RssFile, medians, with a tool − without) | " sprintf("%.0f KiB (%.0f − %.0f KiB), %s of 2 MiB", diff, m("scale_vm_rss_tool"), m("scale_vm_rss_none"), rf(diff > 0 ? diff / lim : 0)) " | " (diff <= lim ? "**met**" : "**missed**: " sprintf("with a tool %.0f … %.0f KiB, without %.0f … %.0f KiB", mn["scale_vm_rss_tool"], mx["scale_vm_rss_tool"], mn["scale_vm_rss_none"], mx["scale_vm_rss_none"])) " |"
	} else
		print "| introspection’s memory per guest in kvmi-vm ≤ 2 MiB | n/a | **not measurable**: " why("scale_vm_rss_tool") " |"
	print "| CPU saturation point (informative) | " (sat ? sat " guest" (sat > 1 ? "s" : "") : "not reached with 32 guests") " | the first guest count at which the machine’s " ncpu " CPUs are ≥ 90 % busy (/proc/stat); the aggregate is judged up to it |"
	print ""
}

# The table of the run in sx.
function sc_table(    t, k, nt, tag) {
	print "| guests | events/s | N × alone | ratio | p50 | p90 | p99 | n | CPUs busy: tool + kvmi-vm | tool | machine | CPU µs per event: all | tool | tool RSS (KiB) |"
	print "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
	nt = split(sc_tags(), t, " ")
	for (k = 1; k <= nt; k++) {
		tag = t[k]
		if (!has(si("rate", tag)))
			continue
		print "| " (tag ~ /^1[a-c]$/ ? "1 (alone, run " substr(tag, 2) ")" : tag) " | " cell(si("rate", tag)) " | " f(sc_n(tag) * m(sa())) " | " rf(sc_ratio(tag)) " | " row3(si("lat", tag)) " | " cell(si("cpu", tag)) " | " cell(si("tcpu", tag)) " | " cell(si("mcpu", tag)) " | " (sc_cpu_per_event(tag) < 0 ? "n/a" : f(sc_cpu_per_event(tag))) " | " cell(si("tus", tag)) " | " cell(si("trss", tag)) " |"
	}
	print ""
}

# The highest aggregate rate of the run in sx, and at how many guests.
function sc_peak(    t, k, nt, best) {
	best = -1
	nt = split(sc_tags(), t, " ")
	for (k = 4; k <= nt; k++)
		if (has(si("rate", t[k])) && m(si("rate", t[k])) > best) {
			best = m(si("rate", t[k]))
			peak_n = t[k]
		}
	return best
}

function scale_section(    p0, p1, pn) {
	print "## 7. One tool, many guests"
	print ""
	sx = ""
	scale_targets()
	if (!has(sa()))
		return
	print "One tool process on the client library serves N kvmi-vm guests (1 vCPU, 64 MiB RAM each) from"
	print "one thread that waits on every domain’s event descriptor (`kvmi_dom_event_fd()`, epoll). Each"
	print "guest stores in a ring-3 loop to its write-protected page; the tool answers every pre-write PF"
	print "event with CONTINUE. The 32 guests start once and wait parked (a PAUSE_VCPU event held, since"
	print "the idle bench guest spins); a round releases N of them, answers for 0.2 s, then measures 1.5 s."
	print "Latencies are timed by the guests (a timed store, as in §1), only stores whose events fell in"
	print "the window. CPU: utime + stime of the tool and of all 32 kvmi-vm over the window ÷ wall time;"
	print "the machine’s /proc/stat next to it (other load shows there). One guest alone: three runs on"
	print "three guests (" f(mn[sa()]) " … " f(mx[sa()]) " events/s), their median (" cell(sa()) ") × N is the sum the aggregate is"
	print "compared with."
	print ""
	sc_table()
	print "Memory (RssAnon + RssFile of /proc/PID/status, i.e. without the guest RAM, which is a memfd"
	print "counted in RssShmem): kvmi-vm without `--introspector`, after the same store loop, " cell("scale_vm_rss_none") " KiB"
	print "(median of " n["scale_vm_rss_none"] " VMs, " f(mn["scale_vm_rss_none"]) " … " f(mx["scale_vm_rss_none"]) "); the " n["scale_vm_rss_tool"] " guests above, whose PF events a tool served (page"
	print "write-protected, PF enabled, a PAUSE_VCPU event held), " cell("scale_vm_rss_tool") " KiB (" f(mn["scale_vm_rss_tool"]) " … " f(mx["scale_vm_rss_tool"]) ")."
	print "The tool’s own RSS grows by " cell("scale_tool_rss_per_guest") " KiB per guest served (each domain: a 128 KiB read buffer, a reader"
	print "thread, its event descriptor)."
	print ""
	p0 = sc_peak()
	pn = peak_n
	sx = "_nospin"
	if (!has(sa()))
		return
	p1 = sc_peak()
	print "### The same with every wait sleeping (KVMI_SPIN_US=0)"
	print ""
	print "A second run of the phase with `KVMI_SPIN_US=0` for every kvmi-vm and the tool: a vCPU that"
	print "waits for the tool’s reply sleeps at once instead of spinning up to " spinus " µs. One guest alone: " f(mn[sa()]) " … " f(mx[sa()])
	print "events/s (median " cell(sa()) "). The highest aggregate is " f(p1) " events/s (" peak_n " guests), against " f(p0) " (" pn " guests)"
	print "with spinning: " rf(p0 > 0 ? p1 / p0 : -1) "."
	print ""
	sc_table()
}
