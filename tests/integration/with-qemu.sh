#!/bin/sh
# with-qemu.sh QEMU CMD [ARGS...]: runs a test of the QEMU frontend against
# that QEMU binary ($KVMI_TEST_QEMU), or reports the test skipped (TAP)
# when it is not there (scripts/fetch-qemu-backports.sh unpacks the
# backports' QEMU, which `make check` does).
QEMU=$1
shift
if [ ! -x "$QEMU" ]; then
	echo "1..0 # SKIP $QEMU missing (scripts/fetch-qemu-backports.sh)"
	exit 0
fi
KVMI_TEST_QEMU=$QEMU
export KVMI_TEST_QEMU
exec "$@"
