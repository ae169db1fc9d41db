# demo-hook.sh: sourced by the real-KVM box's /init (busybox sh) right before
# kvmi-vm boots the demo's Linux guest.  It starts the introspection tool,
# `kvmi`, listening where kvmi-vm will connect (run-demo.sh passes
# --introspector with the same address, and --introspector-wait: no guest
# instruction runs before the tool is ready), with a script of verbs that
# introspect the live kernel:
#   wait-create, msr watch lstar, resume
#                      the vCPU is held before its first instruction while
#                      the tool watches MSR_LSTAR; then the kernel boots
#   trace msr count=1  the kernel's own write of MSR_LSTAR (the 64-bit
#                      SYSCALL entry point) as an MSR event in JSON; its new
#                      value must be entry_SYSCALL_64
#   protect -v 0 jiffies 8 r-x; trace pf lift=3 at=GPA until=lift
#                      the page holding `jiffies` write-protected; the timer
#                      tick's writes arrive as pre-write PF events at its
#                      guest-physical address; they are allowed, and after
#                      3 writes to jiffies itself the protection is lifted
#   info, regs, string linux_banner  the kernel's version string, read at
#                      its virtual address (TRANSLATE_GVA + READ_PHYSICAL)
#   pause, regs, resume  all vCPUs stopped (the guest's heartbeat stops too)
#   trace unhook       the UNHOOK event when the guest shuts down, as JSON
# Symbol addresses come from the box's /proc/kallsyms: the box runs the very
# same kernel image and both boot with nokaslr, so the symbols have the same
# addresses in both.  (The System.map in Debian's kernel package is a
# placeholder without symbols; with KASLR one would add the slide.)
# Output is prefixed "[kvmi]"; the demo's own checks are "[check]" lines.

KVMI_DEMO_SOCK=${KVMI_DEMO_SOCK:-/tmp/kvmi-demo.sock}
KVMI_DEMO_WAIT=${KVMI_DEMO_WAIT:-15}

kvmi_demo_sym() { awk -v s="$1" '$3 == s { print $1; exit }' /proc/kallsyms 2>/dev/null; }
kvmi_demo_banner=$(kvmi_demo_sym linux_banner)
kvmi_demo_lstar=$(kvmi_demo_sym entry_SYSCALL_64)
kvmi_demo_jiffies=$(kvmi_demo_sym jiffies)
# jiffies' guest-physical address: with nokaslr the kernel image is mapped
# at __START_KERNEL_map (0xffffffff80000000) + its physical address.
kvmi_demo_jgpa=
if [ -n "$kvmi_demo_jiffies" ]; then
	kvmi_demo_jgpa=$(printf '0x%x' $((0x${kvmi_demo_jiffies#????????} - 0x80000000)))
fi
kvmi_demo_ok() { case "$1" in ""|0000000000000000) return 1 ;; esac; }
{
	if kvmi_demo_ok "$kvmi_demo_lstar"; then
		echo "wait-create"
		echo "msr watch lstar"
		echo "resume"
		echo "trace msr count=1 seconds=60"
		echo "msr unwatch"
	fi
	if kvmi_demo_ok "$kvmi_demo_jiffies"; then
		echo "protect -v 0 0x$kvmi_demo_jiffies 8 r-x"
		echo "trace pf lift=3 at=$kvmi_demo_jgpa until=lift seconds=60"
	fi
	echo "info"
	echo "sleep $KVMI_DEMO_WAIT"
	if kvmi_demo_ok "$kvmi_demo_banner"; then
		echo "string 0 0x$kvmi_demo_banner 200"
	fi
	echo "pause"
	echo "regs 0"
	echo "sleep 3"
	echo "resume"
	echo "trace unhook seconds=120"
} >/tmp/kvmi-demo.script
mkdir -p /tmp
# Shows the tool's output; JSON events of the LSTAR and jiffies parts are
# checked as they arrive.  PF events elsewhere on the page (init code
# sweeping over it once) are counted, the first three shown.
kvmi_demo_show() {
	pf_other=0 pf_at=0
	while IFS= read -r l; do
		case "$l" in
		*'"event":"MSR"'*'"msr":"0xc0000082"'*)
			echo "[kvmi] $l"
			new=$(printf '%s\n' "$l" | sed -n 's/.*"new_value":"0x\([0-9a-f]*\)".*/\1/p')
			if [ "$new" = "$kvmi_demo_lstar" ]; then
				echo "[check] OK: the kernel wrote MSR_LSTAR = 0x$new = entry_SYSCALL_64 (kallsyms)"
			else
				echo "[check] FAILED: MSR_LSTAR new value 0x$new, entry_SYSCALL_64 is 0x$kvmi_demo_lstar"
			fi ;;
		*'"event":"PF"'*)
			case "$l" in
			*"\"gpa\":\"$kvmi_demo_jgpa\""*)
				pf_at=$((pf_at + 1))
				echo "[kvmi] $l" ;;
			*)
				pf_other=$((pf_other + 1))
				[ "$pf_other" -le 3 ] && echo "[kvmi] $l"
				[ "$pf_other" -eq 4 ] && echo "[kvmi] (more PF events elsewhere on the page: counted, not shown)" ;;
			esac
			case "$l" in
			*'"reply":"lift"'*)
				echo "[check] $pf_at pre-write PF events at jiffies (0x$kvmi_demo_jiffies, gpa $kvmi_demo_jgpa), $pf_other elsewhere on its page; protection lifted"
				if [ "$pf_at" -ge 1 ]; then
					echo "[check] OK: the timer tick's writes to jiffies arrived as pre-write PF events at its address"
				else
					echo "[check] FAILED: no pre-write PF event at jiffies' address"
				fi ;;
			esac ;;
		*) echo "[kvmi] $l" ;;
		esac
	done
}
( /kvmi/extra/kvmi-static -t 60 -f /tmp/kvmi-demo.script listen "unix:$KVMI_DEMO_SOCK" 2>&1 |
	kvmi_demo_show ) &
sleep 1
