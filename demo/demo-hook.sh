# demo-hook.sh: sourced by the real-KVM box's /init (busybox sh) right before
# kvmi-vm boots the demo's Linux guest.  It starts the introspection tool,
# `kvmi`, listening where kvmi-vm will connect (run-demo.sh passes
# --introspector with the same address), with a script of verbs that
# introspect the live kernel:
#   info, regs         right after connecting (the kernel is still booting)
#   string linux_banner  the kernel's version string, read at its virtual
#                      address through TRANSLATE_GVA + READ_PHYSICAL; the
#                      address comes from the box's /proc/kallsyms: the box
#                      runs the very same kernel image, and both boot with
#                      nokaslr, so the symbol has the same address in both
#   pause, regs, resume  all vCPUs stopped (the guest's heartbeat stops too)
#   trace unhook       the UNHOOK event when the guest shuts down, as JSON
# Its output is prefixed "[kvmi]" on the console.

KVMI_DEMO_SOCK=${KVMI_DEMO_SOCK:-/tmp/kvmi-demo.sock}
KVMI_DEMO_WAIT=${KVMI_DEMO_WAIT:-25}

kvmi_demo_banner=$(awk '$3 == "linux_banner" { print "0x" $1; exit }' /proc/kallsyms 2>/dev/null)
{
	echo "info"
	echo "regs 0"
	echo "sleep $KVMI_DEMO_WAIT"
	if [ -n "$kvmi_demo_banner" ] && [ "$kvmi_demo_banner" != 0x0000000000000000 ]; then
		echo "string 0 $kvmi_demo_banner 200"
	fi
	echo "pause"
	echo "regs 0"
	echo "sleep 3"
	echo "resume"
	echo "trace unhook seconds=120"
} >/tmp/kvmi-demo.script
mkdir -p /tmp
( /kvmi/extra/kvmi-static -t 60 -f /tmp/kvmi-demo.script listen "unix:$KVMI_DEMO_SOCK" 2>&1 |
	while IFS= read -r kvmi_line; do echo "[kvmi] $kvmi_line"; done ) &
sleep 1
