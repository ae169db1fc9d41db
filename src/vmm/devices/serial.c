/* SPDX-License-Identifier: MIT */
/*
 * 16550A UART: the registers Linux's 8250 driver and our test runtime use.
 * Transmission is instantaneous (THR empty is always set), so the transmit
 * interrupt fires as soon as it is enabled or a byte is written; receive data
 * comes from a file descriptor through a small FIFO.  The interrupt line is
 * level: raised while IIR reports a pending cause.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../bus.h"
#include "util.h"
#include "../vm.h"
#include "devices.h"

#define UART_RX   0  /* DLAB=0 */
#define UART_TX   0
#define UART_DLL  0  /* DLAB=1 */
#define UART_IER  1
#define UART_DLM  1
#define UART_IIR  2
#define UART_FCR  2
#define UART_LCR  3
#define UART_MCR  4
#define UART_LSR  5
#define UART_MSR  6
#define UART_SCR  7

#define IER_RDI  0x01
#define IER_THRI 0x02
#define IIR_NO_INT 0x01
#define IIR_THRI   0x02
#define IIR_RDI    0x04
#define IIR_FIFO   0xc0
#define LCR_DLAB 0x80
#define LSR_DR   0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MCR_DTR  0x01
#define MCR_RTS  0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI  0x40
#define MSR_DCD 0x80

#define RX_FIFO 256

struct serial {
	struct vm *vm;
	uint16_t base;
	unsigned irq;
	int out_fd, in_fd;
	int stop_pipe[2];
	pthread_t in_thread;
	bool in_started;

	pthread_mutex_t lock;
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	bool thri_pending;
	uint8_t rx[RX_FIFO];
	unsigned rx_head, rx_count;
	int irq_level;
};

static uint8_t iir(const struct serial *s)
{
	uint8_t fifo = (s->fcr & 1) ? IIR_FIFO : 0;

	if ((s->ier & IER_RDI) && s->rx_count)
		return IIR_RDI | fifo;
	if ((s->ier & IER_THRI) && s->thri_pending)
		return IIR_THRI | fifo;
	return IIR_NO_INT | fifo;
}

/* Caller holds the lock. */
static void update_irq(struct serial *s)
{
	struct kvm_irq_level lvl = { .irq = s->irq };
	int level = !(iir(s) & IIR_NO_INT);

	if (level == s->irq_level)
		return;
	s->irq_level = level;
	lvl.level = (uint32_t)level;
	if (ioctl(s->vm->vm_fd, KVM_IRQ_LINE, &lvl) < 0)
		pr_debug("serial: KVM_IRQ_LINE: %s", strerror(errno));
}

static void tx(struct serial *s, uint8_t c)
{
	if (s->mcr & MCR_LOOP) {
		if (s->rx_count < RX_FIFO)
			s->rx[(s->rx_head + s->rx_count++) % RX_FIFO] = c;
		return;
	}
	while (write(s->out_fd, &c, 1) < 0 && errno == EINTR)
		;
}

static uint8_t reg_read(struct serial *s, unsigned off)
{
	uint8_t v = 0, id;

	switch (off) {
	case UART_RX:
		if (s->lcr & LCR_DLAB)
			return s->dll;
		if (s->rx_count) {
			v = s->rx[s->rx_head];
			s->rx_head = (s->rx_head + 1) % RX_FIFO;
			s->rx_count--;
		}
		return v;
	case UART_IER:
		return (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
	case UART_IIR:
		id = iir(s);
		if ((id & 0x0f) == IIR_THRI)
			s->thri_pending = false; /* reading IIR acknowledges THRE */
		return id;
	case UART_LCR:
		return s->lcr;
	case UART_MCR:
		return s->mcr;
	case UART_LSR:
		return LSR_THRE | LSR_TEMT | (s->rx_count ? LSR_DR : 0);
	case UART_MSR:
		if (s->mcr & MCR_LOOP)
			return (uint8_t)(((s->mcr & MCR_RTS) ? MSR_CTS : 0) |
					 ((s->mcr & MCR_DTR) ? MSR_DSR : 0) |
					 ((s->mcr & MCR_OUT1) ? MSR_RI : 0) |
					 ((s->mcr & MCR_OUT2) ? MSR_DCD : 0));
		return MSR_DCD | MSR_DSR | MSR_CTS;
	case UART_SCR:
		return s->scr;
	}
	return 0xff;
}

static void reg_write(struct serial *s, unsigned off, uint8_t v)
{
	switch (off) {
	case UART_TX:
		if (s->lcr & LCR_DLAB) {
			s->dll = v;
		} else {
			tx(s, v);
			s->thri_pending = true;
		}
		break;
	case UART_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
		} else {
			if ((v & IER_THRI) && !(s->ier & IER_THRI))
				s->thri_pending = true;
			s->ier = v & 0x0f;
		}
		break;
	case UART_FCR:
		s->fcr = v & 0xc9;
		if (v & 0x02) { /* clear receive FIFO */
			s->rx_head = 0;
			s->rx_count = 0;
		}
		break;
	case UART_LCR:
		s->lcr = v;
		break;
	case UART_MCR:
		s->mcr = v & 0x1f;
		break;
	case UART_SCR:
		s->scr = v;
		break;
	}
}

static void serial_pio_read(void *opaque, struct vcpu *vcpu, uint64_t off, void *data, unsigned len)
{
	struct serial *s = opaque;

	(void)vcpu;
	pthread_mutex_lock(&s->lock);
	memset(data, 0, len);
	*(uint8_t *)data = reg_read(s, (unsigned)off);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

static void serial_pio_write(void *opaque, struct vcpu *vcpu, uint64_t off, const void *data,
			     unsigned len)
{
	struct serial *s = opaque;

	(void)vcpu;
	(void)len;
	pthread_mutex_lock(&s->lock);
	reg_write(s, (unsigned)off, *(const uint8_t *)data);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

static const struct bus_dev_ops serial_ops = {
	.read = serial_pio_read,
	.write = serial_pio_write,
};

void serial_receive(struct serial *s, const uint8_t *buf, size_t len)
{
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < len && s->rx_count < RX_FIFO; i++)
		s->rx[(s->rx_head + s->rx_count++) % RX_FIFO] = buf[i];
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

static void *input_thread(void *arg)
{
	struct serial *s = arg;
	struct pollfd p[2] = { { s->in_fd, POLLIN, 0 }, { s->stop_pipe[0], POLLIN, 0 } };
	uint8_t buf[64];

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		if (p[0].revents) {
			ssize_t n = read(s->in_fd, buf, sizeof(buf));

			if (n <= 0)
				break; /* EOF: no more input, the guest keeps running */
			serial_receive(s, buf, (size_t)n);
		}
	}
	return NULL;
}

struct serial *serial_create(struct vm *vm, uint16_t base, unsigned irq, int out_fd, int in_fd)
{
	struct serial *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->vm = vm;
	s->base = base;
	s->irq = irq;
	s->out_fd = out_fd;
	s->in_fd = in_fd;
	s->stop_pipe[0] = s->stop_pipe[1] = -1;
	s->mcr = MCR_OUT2;
	pthread_mutex_init(&s->lock, NULL);
	if (bus_register(&vm->pio, base, 8, &serial_ops, s, "serial")) {
		pthread_mutex_destroy(&s->lock);
		free(s);
		return NULL;
	}
	return s;
}

int serial_start_input(struct serial *s)
{
	int err;

	if (s->in_fd < 0)
		return 0;
	if (pipe2(s->stop_pipe, O_CLOEXEC) < 0)
		return -errno;
	err = pthread_create(&s->in_thread, NULL, input_thread, s);
	if (err)
		return -err;
	s->in_started = true;
	return 0;
}

void serial_stop_input(struct serial *s)
{
	if (!s || !s->in_started)
		return;
	(void)!write(s->stop_pipe[1], "x", 1);
	pthread_join(s->in_thread, NULL);
	s->in_started = false;
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
	s->stop_pipe[0] = s->stop_pipe[1] = -1;
}

void serial_destroy(struct serial *s)
{
	if (!s)
		return;
	serial_stop_input(s);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
