/*
 * vfs.c - the "midge" SQLite VFS: the default (unix) VFS with every file
 * wrapped so that syncs are counted (the fsyncs-per-second figure is what
 * SQLite really asked the kernel for, WAL commits and checkpoints alike)
 * and, for the unit tests of the failure paths, writes and syncs can be
 * made to fail on request (store_vfs_fault). The same shim as SQLite's own
 * ext/misc/vfstrace.c, reduced to what midge needs.
 */
#include "store/internal.h"

#include <string.h>

_Atomic uint64_t store_vfs_syncs;
_Atomic int store_vfs_fault;

struct vfile {
	sqlite3_file base; /* first: SQLite sees this */
	sqlite3_file *real; /* the default VFS's file, right after this struct */
};

static sqlite3_vfs *real_vfs;

static int v_close(sqlite3_file *f)
{
	struct vfile *v = (struct vfile *)f;
	int rc = v->real->pMethods ? v->real->pMethods->xClose(v->real) : SQLITE_OK;
	return rc;
}

static int v_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
	struct vfile *v = (struct vfile *)f;
	return v->real->pMethods->xRead(v->real, p, n, off);
}

static int v_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
	struct vfile *v = (struct vfile *)f;
	int fault = atomic_load(&store_vfs_fault);
	if (fault)
		return fault;
	return v->real->pMethods->xWrite(v->real, p, n, off);
}

static int v_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	struct vfile *v = (struct vfile *)f;
	return v->real->pMethods->xTruncate(v->real, size);
}

static int v_sync(sqlite3_file *f, int flags)
{
	struct vfile *v = (struct vfile *)f;
	int fault = atomic_load(&store_vfs_fault);
	if (fault)
		return fault == SQLITE_FULL ? SQLITE_IOERR_FSYNC : fault;
	atomic_fetch_add(&store_vfs_syncs, 1);
	return v->real->pMethods->xSync(v->real, flags);
}

static int v_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	struct vfile *v = (struct vfile *)f;
	return v->real->pMethods->xFileSize(v->real, size);
}

static int v_lock(sqlite3_file *f, int lock)
{
	struct vfile *v = (struct vfile *)f;
	return v->real->pMethods->xLock(v->real, lock);
}

static int v_unlock(sqlite3_file *f, int lock)
{
	struct vfile *v = (struct vfile *)f;
	return v->real->pMethods->xUnlock(v->real, lock);
}

static int v_check_reserved(sqlite3_file *f, int *out)
{
	struct vfile *v = (struct vfile *)f;
	return v->real->pMethods->xCheckReservedLock(v->real, out);
}

static int v_file_control(sqlite3_file *f, int op, void *arg)
{
	struct vfile *v = (struct vfile *)f;
	return v->real->pMethods->xFileControl(v->real, op, arg);
}

static int v_sector_size(sqlite3_file *f)
{
	struct vfile *v = (struct vfile *)f;
	return v->real->pMethods->xSectorSize(v->real);
}

static int v_device_characteristics(sqlite3_file *f)
{
	struct vfile *v = (struct vfile *)f;
	return v->real->pMethods->xDeviceCharacteristics(v->real);
}

static int v_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **p)
{
	struct vfile *v = (struct vfile *)f;
	return v->real->pMethods->xShmMap(v->real, region, size, extend, p);
}

static int v_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
	struct vfile *v = (struct vfile *)f;
	return v->real->pMethods->xShmLock(v->real, offset, n, flags);
}

static void v_shm_barrier(sqlite3_file *f)
{
	struct vfile *v = (struct vfile *)f;
	v->real->pMethods->xShmBarrier(v->real);
}

static int v_shm_unmap(sqlite3_file *f, int del)
{
	struct vfile *v = (struct vfile *)f;
	return v->real->pMethods->xShmUnmap(v->real, del);
}

static int v_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
	struct vfile *v = (struct vfile *)f;
	return v->real->pMethods->xFetch(v->real, off, n, pp);
}

static int v_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	struct vfile *v = (struct vfile *)f;
	return v->real->pMethods->xUnfetch(v->real, off, p);
}

/* One table per io_methods version: a wrapped file offers no more than
 * the real one does (the unix VFS has version 1 files too). */
#define V_METHODS(version)                                                                    \
	{                                                                                     \
		version, v_close, v_read, v_write, v_truncate, v_sync, v_file_size, v_lock,   \
		v_unlock, v_check_reserved, v_file_control, v_sector_size,                    \
		v_device_characteristics, v_shm_map, v_shm_lock, v_shm_barrier, v_shm_unmap,  \
		v_fetch, v_unfetch,                                                           \
	}
static const sqlite3_io_methods v_methods[3] = {V_METHODS(1), V_METHODS(2), V_METHODS(3)};

static int v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
	struct vfile *v = (struct vfile *)f;
	v->real = (sqlite3_file *)(v + 1);
	memset(v->real, 0, (size_t)real_vfs->szOsFile);
	int rc = real_vfs->xOpen(real_vfs, name, v->real, flags, out_flags);
	/* pMethods set (even on failure, when the real file set its own) means
	 * xClose will be called: delegate it */
	if (v->real->pMethods) {
		int version = v->real->pMethods->iVersion;
		v->base.pMethods = &v_methods[version < 1 ? 0 : version > 3 ? 2 : version - 1];
	} else {
		v->base.pMethods = NULL;
	}
	(void)vfs;
	return rc;
}

static int v_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	(void)vfs;
	return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int v_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int v_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static void *v_dl_open(sqlite3_vfs *vfs, const char *name)
{
	(void)vfs;
	return real_vfs->xDlOpen(real_vfs, name);
}

static void v_dl_error(sqlite3_vfs *vfs, int n, char *msg)
{
	(void)vfs;
	real_vfs->xDlError(real_vfs, n, msg);
}

static void (*v_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	(void)vfs;
	return real_vfs->xDlSym(real_vfs, h, sym);
}

static void v_dl_close(sqlite3_vfs *vfs, void *h)
{
	(void)vfs;
	real_vfs->xDlClose(real_vfs, h);
}

static int v_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return real_vfs->xRandomness(real_vfs, n, out);
}

static int v_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return real_vfs->xSleep(real_vfs, us);
}

static int v_current_time(sqlite3_vfs *vfs, double *t)
{
	(void)vfs;
	return real_vfs->xCurrentTime(real_vfs, t);
}

static int v_last_error(sqlite3_vfs *vfs, int n, char *msg)
{
	(void)vfs;
	return real_vfs->xGetLastError ? real_vfs->xGetLastError(real_vfs, n, msg) : 0;
}

static int v_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *t)
{
	(void)vfs;
	return real_vfs->xCurrentTimeInt64(real_vfs, t);
}

static sqlite3_vfs midge_vfs;
static pthread_once_t vfs_once = PTHREAD_ONCE_INIT;
static int vfs_rc = -1;

static void vfs_setup(void)
{
	real_vfs = sqlite3_vfs_find(NULL);
	if (!real_vfs || real_vfs->iVersion < 2)
		return;
	midge_vfs.iVersion = 2;
	midge_vfs.szOsFile = (int)sizeof(struct vfile) + real_vfs->szOsFile;
	midge_vfs.mxPathname = real_vfs->mxPathname;
	midge_vfs.zName = "midge";
	midge_vfs.xOpen = v_open;
	midge_vfs.xDelete = v_delete;
	midge_vfs.xAccess = v_access;
	midge_vfs.xFullPathname = v_full_pathname;
	midge_vfs.xDlOpen = v_dl_open;
	midge_vfs.xDlError = v_dl_error;
	midge_vfs.xDlSym = v_dl_sym;
	midge_vfs.xDlClose = v_dl_close;
	midge_vfs.xRandomness = v_randomness;
	midge_vfs.xSleep = v_sleep;
	midge_vfs.xCurrentTime = v_current_time;
	midge_vfs.xGetLastError = v_last_error;
	midge_vfs.xCurrentTimeInt64 = v_current_time64;
	vfs_rc = sqlite3_vfs_register(&midge_vfs, 0) == SQLITE_OK ? 0 : -1;
}

int store_vfs_register(void)
{
	pthread_once(&vfs_once, vfs_setup);
	return vfs_rc;
}
