/* SPDX-License-Identifier: MIT */
/* A payload that must never run: cli-tests.sh links it at addresses kvmi-vm
 * has to refuse (below 1 MiB, beyond guest RAM). */
	.text
	.globl _start
_start:
	ud2
	jmp _start

	.section .note.GNU-stack, "", @progbits
