/* mpi_count: a PMPI shim that counts the MPI collectives and MPI-IO calls of each rank and writes them at
 * MPI_Finalize to $MPICOUNT_OUT.<rank>: load-independent evidence of what a write path costs.
 * Build and use (not part of the CMake build):
 *   mpicc -shared -fPIC -O2 -o /tmp/libmpicount.so bench/mpi_count.c
 *   MPICOUNT_OUT=/tmp/count mpirun -np 2 -x LD_PRELOAD=/tmp/libmpicount.so -x MPICOUNT_OUT build/mimic label
 * ...
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
enum {
    BARRIER,
    BCAST,
    ALLREDUCE,
    ALLGATHER,
    GATHER,
    REDUCE,
    ALLTOALL,
    FSYNC,
    WRITE_ALL,
    WRITE_AT,
    SET_SIZE,
    GET_SIZE,
    SET_VIEW,
    COMM_DUP,
    READ_ALL,
    READ_AT,
    NCOUNT
};
static const char* names[] = {
    "Barrier",       "Bcast",     "Allreduce",         "Allgather",     "Gather",        "Reduce",
    "Alltoall",      "File_sync", "File_write_at_all", "File_write_at", "File_set_size", "File_get_size",
    "File_set_view", "Comm_dup",  "File_read_at_all",  "File_read_at"};
static long cnt[NCOUNT];
int MPI_Barrier(MPI_Comm c) {
    cnt[BARRIER]++;
    return PMPI_Barrier(c);
}
int MPI_Bcast(void* b, int n, MPI_Datatype t, int r, MPI_Comm c) {
    cnt[BCAST]++;
    return PMPI_Bcast(b, n, t, r, c);
}
int MPI_Allreduce(const void* s, void* r, int n, MPI_Datatype t, MPI_Op o, MPI_Comm c) {
    cnt[ALLREDUCE]++;
    return PMPI_Allreduce(s, r, n, t, o, c);
}
int MPI_Allgather(const void* s, int sn, MPI_Datatype st, void* r, int rn, MPI_Datatype rt, MPI_Comm c) {
    cnt[ALLGATHER]++;
    return PMPI_Allgather(s, sn, st, r, rn, rt, c);
}
int MPI_Gather(const void* s, int sn, MPI_Datatype st, void* r, int rn, MPI_Datatype rt, int root,
               MPI_Comm c) {
    cnt[GATHER]++;
    return PMPI_Gather(s, sn, st, r, rn, rt, root, c);
}
int MPI_Reduce(const void* s, void* r, int n, MPI_Datatype t, MPI_Op o, int root, MPI_Comm c) {
    cnt[REDUCE]++;
    return PMPI_Reduce(s, r, n, t, o, root, c);
}
int MPI_Alltoall(const void* s, int sn, MPI_Datatype st, void* r, int rn, MPI_Datatype rt, MPI_Comm c) {
    cnt[ALLTOALL]++;
    return PMPI_Alltoall(s, sn, st, r, rn, rt, c);
}
int MPI_File_sync(MPI_File f) {
    cnt[FSYNC]++;
    return PMPI_File_sync(f);
}
int MPI_File_write_at_all(MPI_File f, MPI_Offset o, const void* b, int n, MPI_Datatype t, MPI_Status* s) {
    cnt[WRITE_ALL]++;
    return PMPI_File_write_at_all(f, o, b, n, t, s);
}
int MPI_File_write_at(MPI_File f, MPI_Offset o, const void* b, int n, MPI_Datatype t, MPI_Status* s) {
    cnt[WRITE_AT]++;
    return PMPI_File_write_at(f, o, b, n, t, s);
}
int MPI_File_read_at_all(MPI_File f, MPI_Offset o, void* b, int n, MPI_Datatype t, MPI_Status* s) {
    cnt[READ_ALL]++;
    return PMPI_File_read_at_all(f, o, b, n, t, s);
}
int MPI_File_read_at(MPI_File f, MPI_Offset o, void* b, int n, MPI_Datatype t, MPI_Status* s) {
    cnt[READ_AT]++;
    return PMPI_File_read_at(f, o, b, n, t, s);
}
int MPI_File_set_size(MPI_File f, MPI_Offset n) {
    cnt[SET_SIZE]++;
    return PMPI_File_set_size(f, n);
}
int MPI_File_get_size(MPI_File f, MPI_Offset* n) {
    cnt[GET_SIZE]++;
    return PMPI_File_get_size(f, n);
}
int MPI_File_set_view(MPI_File f, MPI_Offset d, MPI_Datatype e, MPI_Datatype t, const char* r, MPI_Info i) {
    cnt[SET_VIEW]++;
    return PMPI_File_set_view(f, d, e, t, r, i);
}
int MPI_Comm_dup(MPI_Comm c, MPI_Comm* n) {
    cnt[COMM_DUP]++;
    return PMPI_Comm_dup(c, n);
}
int MPI_Finalize(void) {
    int r;
    PMPI_Comm_rank(MPI_COMM_WORLD, &r);
    const char* p = getenv("MPICOUNT_OUT");
    char fn[512];
    snprintf(fn, sizeof fn, "%s.%d", p ? p : "/tmp/mpicount/out", r);
    FILE* f = fopen(fn, "w");
    for (int i = 0; i < NCOUNT; i++)
        if (cnt[i]) fprintf(f, "%s %ld\n", names[i], cnt[i]);
    fclose(f);
    return PMPI_Finalize();
}
