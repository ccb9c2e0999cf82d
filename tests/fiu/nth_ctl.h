/*
 * nth_ctl: the control block shared between the "fail the Nth call"
 * preload (nth_preload.c, inside the daemon) and the sweep driver
 * (nth_sweep.c) that steers it (test tooling, no daemon layer).
 *
 * Contract: the driver creates a file of sizeof(fs_fiu_nth_ctl) bytes,
 * zeroed, names it in FS_FIU_NTH_CTL and the failure points in
 * FS_FIU_NTH_POINTS (space-separated libfiu names, at most
 * FS_FIU_NTH_POINTS_MAX), and starts the daemon with the preload. Both map
 * the file shared. While `armed` is 1 every call of an enabled point counts
 * in per_point[i], and in `count` when `only_point` is -1 or i (the sweep
 * walks one point at a time); the call whose count equals `target` fails, once:
 * `injected` becomes 1 and `failed_point` its index. The driver sets
 * target and clears the counters before it arms, and disarms before it
 * reads them. Only atomics: the preload's callback runs inside malloc and
 * write, where nothing else is safe.
 */
#ifndef FS_FIU_NTH_CTL_H
#define FS_FIU_NTH_CTL_H

#include <stdatomic.h>
#include <stdint.h>

#define FS_FIU_NTH_MAGIC 0x66697531u /* "fiu1" */
#define FS_FIU_NTH_POINTS_MAX 48

typedef struct fs_fiu_nth_ctl {
	_Atomic uint32_t magic;  /* set by the preload once its points are enabled */
	_Atomic uint32_t armed;  /* 1: count calls, fail the target'th */
	_Atomic uint64_t target; /* 1-based */
	_Atomic uint64_t count;  /* calls seen while armed */
	_Atomic uint32_t injected;
	_Atomic int32_t failed_point; /* index into FS_FIU_NTH_POINTS, -1 none */
	_Atomic uint32_t n_points;
	_Atomic int32_t only_point; /* -1: every point counts */
	_Atomic uint64_t per_point[FS_FIU_NTH_POINTS_MAX];
} fs_fiu_nth_ctl;

#endif
