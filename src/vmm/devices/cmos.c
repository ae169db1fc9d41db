/* SPDX-License-Identifier: MIT */
/*
 * CMOS / RTC (ports 0x70-0x71): the clock registers in BCD from the host's
 * time, update-in-progress always clear, so Linux reads the wall clock at
 * boot without waiting.  Other NVRAM bytes are plain storage.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../bus.h"
#include "util.h"
#include "../vm.h"
#include "devices.h"

struct cmos {
	pthread_mutex_t lock;
	uint8_t index;
	uint8_t nvram[128];
};

static uint8_t bcd(int v)
{
	return (uint8_t)(((v / 10) << 4) | (v % 10));
}

static uint8_t cmos_reg(struct cmos *c, uint8_t reg)
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	switch (reg) {
	case 0x00: return bcd(tm.tm_sec);
	case 0x02: return bcd(tm.tm_min);
	case 0x04: return bcd(tm.tm_hour);
	case 0x06: return bcd(tm.tm_wday + 1);
	case 0x07: return bcd(tm.tm_mday);
	case 0x08: return bcd(tm.tm_mon + 1);
	case 0x09: return bcd(tm.tm_year % 100);
	case 0x32: return bcd((1900 + tm.tm_year) / 100);
	case 0x0a: return 0x26;  /* UIP clear, 32.768 kHz divider */
	case 0x0b: return 0x02;  /* 24-hour, BCD */
	case 0x0c: return 0x00;
	case 0x0d: return 0x80;  /* valid RAM and time */
	default:   return c->nvram[reg & 0x7f];
	}
}

static void cmos_read(void *opaque, struct vcpu *vcpu, uint64_t off, void *data, unsigned len)
{
	struct cmos *c = opaque;

	(void)vcpu;
	memset(data, 0xff, len);
	if (off != 1)
		return;
	pthread_mutex_lock(&c->lock);
	*(uint8_t *)data = cmos_reg(c, c->index);
	pthread_mutex_unlock(&c->lock);
}

static void cmos_write(void *opaque, struct vcpu *vcpu, uint64_t off, const void *data, unsigned len)
{
	struct cmos *c = opaque;
	uint8_t v = *(const uint8_t *)data;

	(void)vcpu;
	(void)len;
	pthread_mutex_lock(&c->lock);
	if (off == 0)
		c->index = v & 0x7f; /* bit 7 is the NMI mask */
	else if (c->index > 0x0d)
		c->nvram[c->index] = v;
	pthread_mutex_unlock(&c->lock);
}

static const struct bus_dev_ops cmos_ops = { .read = cmos_read, .write = cmos_write };

int cmos_init(struct vm *vm)
{
	struct cmos *c = calloc(1, sizeof(*c));
	int err;

	if (!c)
		return -1;
	pthread_mutex_init(&c->lock, NULL);
	err = bus_register(&vm->pio, 0x70, 2, &cmos_ops, c, "cmos");
	if (err) {
		pthread_mutex_destroy(&c->lock);
		free(c);
		return err;
	}
	vm->cmos = c;
	return 0;
}

void cmos_destroy(struct vm *vm)
{
	if (!vm->cmos)
		return;
	pthread_mutex_destroy(&vm->cmos->lock);
	free(vm->cmos);
	vm->cmos = NULL;
}
