/* sync_count: how many fsync/fdatasync/msync calls this process made (sync_count.c). */
#ifndef FS_BENCH_SYNC_COUNT_H
#define FS_BENCH_SYNC_COUNT_H

extern long sync_count;

#endif
