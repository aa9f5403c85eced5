// Fault injection for tests/integration/test_faults.py: an LD_PRELOAD library
// that wraps a few libvirt calls of the agent running on libvirt's in-process
// test driver. The file named by $VIRTSCALE_FAULTS is re-read on every wrapped
// call; each line is "KIND DOMAIN-PREFIX [SECONDS]":
//
//   error faulty-        per-domain stats calls (virDomainGetInfo,
//                        virDomainMemoryStats) fail for matching domains
//   hang slow- 6         virDomainGetInfo of matching domains blocks 6 s first
//                        (a domain, or libvirt, that stops answering)
//   poolfull tiny        creating a volume in a matching storage pool fails
//                        with libvirt's own "Not enough free space in pool"
//                        (the test driver does not count clones against it)
//   poollist test:       virConnectListAllStoragePools fails on connections
//                        whose URI starts with the prefix
//   bulkfail test:       virDomainListGetStats (the bulk stats call) fails on
//                        connections whose URI starts with the prefix
//   poolhang test: 4     virConnectListAllStoragePools on matching
//                        connections blocks 4 s first
//   metahang stamp- 3    virDomainSetMetadata of matching domains blocks 3 s
//                        first (a domain whose job lock libvirt holds)
//   job web-             virDomainGetJobStats reports an outgoing migration in
//                        progress for matching domains and no job for the
//                        others (the test driver has no job API)
//   dirtyrate test       the bulk stats call, when asked for the dirtyrate
//                        group, gives matching domains a measured dirty rate
//                        (the test driver has no dirtyrate group)
//   vanish gone-         matching domains are destroyed and undefined right
//                        after virConnectListAllDomains returned them, so every
//                        later call on them finds no domain
//
// Build: cc -shared -fPIC -o fault_shim.so fault_shim.c -ldl -lvirt
#define _GNU_SOURCE
#include <dlfcn.h>
#include <libvirt/libvirt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// Matches every prefix: "is there a rule of this kind at all?"
static const char ANY[] = "*";

// Returns the seconds (or 1) of the first rule of `kind` whose prefix starts
// `name` (any rule of `kind` for ANY), else 0.
static int Match(const char* kind, const char* name) {
  const char* path = getenv("VIRTSCALE_FAULTS");
  if (path == NULL || name == NULL) return 0;
  FILE* f = fopen(path, "r");
  if (f == NULL) return 0;
  char line[256], k[64], prefix[128];
  int seconds, hit = 0;
  while (!hit && fgets(line, sizeof line, f) != NULL) {
    seconds = 1;
    if (sscanf(line, "%63s %127s %d", k, prefix, &seconds) < 2) continue;
    if (strcmp(k, kind) == 0 && (name == ANY || strncmp(name, prefix, strlen(prefix)) == 0))
      hit = seconds > 0 ? seconds : 1;
  }
  fclose(f);
  return hit;
}

// Leaves a genuine libvirt error on the thread (an invalid-flags failure of a
// call on the same domain): there is no public API to raise one directly.
static void Fail(virDomainPtr dom) {
  char* xml = virDomainGetXMLDesc(dom, 1u << 30);
  free(xml);
}

#define REAL(ret, fn, ...)                                   \
  static ret (*real)(__VA_ARGS__) = NULL;                    \
  if (real == NULL) real = (ret(*)(__VA_ARGS__))dlsym(RTLD_NEXT, fn)

int virDomainGetInfo(virDomainPtr dom, virDomainInfoPtr info) {
  REAL(int, "virDomainGetInfo", virDomainPtr, virDomainInfoPtr);
  const char* name = virDomainGetName(dom);
  int hang = Match("hang", name);
  if (hang > 0) sleep((unsigned)hang);
  if (Match("error", name)) {
    Fail(dom);
    return -1;
  }
  return real(dom, info);
}

int virDomainSetMetadata(virDomainPtr dom, int type, const char* metadata, const char* key,
                         const char* uri, unsigned int flags) {
  REAL(int, "virDomainSetMetadata", virDomainPtr, int, const char*, const char*, const char*,
       unsigned int);
  int hang = Match("metahang", virDomainGetName(dom));
  if (hang > 0) sleep((unsigned)hang);
  return real(dom, type, metadata, key, uri, flags);
}

int virDomainMemoryStats(virDomainPtr dom, virDomainMemoryStatPtr stats, unsigned int nr,
                         unsigned int flags) {
  REAL(int, "virDomainMemoryStats", virDomainPtr, virDomainMemoryStatPtr, unsigned int,
       unsigned int);
  const char* name = virDomainGetName(dom);
  if (Match("error", name)) {
    Fail(dom);
    return -1;
  }
  return real(dom, stats, nr, flags);
}

int virConnectListAllDomains(virConnectPtr conn, virDomainPtr** domains, unsigned int flags) {
  REAL(int, "virConnectListAllDomains", virConnectPtr, virDomainPtr**, unsigned int);
  int n = real(conn, domains, flags);
  if (n > 0 && domains != NULL) {
    for (int i = 0; i < n; ++i) {
      virDomainPtr dom = (*domains)[i];
      if (!Match("vanish", virDomainGetName(dom))) continue;
      if (virDomainIsActive(dom) == 1) virDomainDestroy(dom);
      virDomainUndefine(dom);
    }
  }
  return n;
}

// Asks the pool for an impossibly large volume so libvirt itself reports the
// pool as full, and returns NULL like the failed call would.
static virStorageVolPtr PoolFull(virStoragePoolPtr pool) {
  static const char kHuge[] =
      "<volume><name>virtscale-fault-shim-huge</name>"
      "<capacity>1000000000000000000</capacity><allocation>1000000000000000000</allocation>"
      "</volume>";
  static virStorageVolPtr (*create)(virStoragePoolPtr, const char*, unsigned int) = NULL;
  if (create == NULL)
    create = (virStorageVolPtr(*)(virStoragePoolPtr, const char*, unsigned int))dlsym(
        RTLD_NEXT, "virStorageVolCreateXML");
  virStorageVolPtr vol = create(pool, kHuge, 0);
  if (vol != NULL) {  // not expected; leave nothing behind
    virStorageVolDelete(vol, 0);
    virStorageVolFree(vol);
  }
  return NULL;
}

virStorageVolPtr virStorageVolCreateXML(virStoragePoolPtr pool, const char* xml,
                                        unsigned int flags) {
  REAL(virStorageVolPtr, "virStorageVolCreateXML", virStoragePoolPtr, const char*, unsigned int);
  if (Match("poolfull", virStoragePoolGetName(pool))) return PoolFull(pool);
  return real(pool, xml, flags);
}

virStorageVolPtr virStorageVolCreateXMLFrom(virStoragePoolPtr pool, const char* xml,
                                            virStorageVolPtr clonevol, unsigned int flags) {
  REAL(virStorageVolPtr, "virStorageVolCreateXMLFrom", virStoragePoolPtr, const char*,
       virStorageVolPtr, unsigned int);
  if (Match("poolfull", virStoragePoolGetName(pool))) return PoolFull(pool);
  return real(pool, xml, clonevol, flags);
}

int virDomainListGetStats(virDomainPtr* doms, unsigned int stats,
                          virDomainStatsRecordPtr** records, unsigned int flags) {
  REAL(int, "virDomainListGetStats", virDomainPtr*, unsigned int, virDomainStatsRecordPtr**,
       unsigned int);
  if (doms != NULL && doms[0] != NULL) {
    char* uri = virConnectGetURI(virDomainGetConnect(doms[0]));
    int fail = Match("bulkfail", uri);
    free(uri);
    if (fail) {
      Fail(doms[0]);
      return -1;
    }
  }
  // The test driver has no dirtyrate group: ask without it, then add one.
  const int dirtyrate = (stats & VIR_DOMAIN_STATS_DIRTYRATE) && Match("dirtyrate", ANY);
  if (dirtyrate) stats &= ~(unsigned)VIR_DOMAIN_STATS_DIRTYRATE;
  int n = real(doms, stats, records, flags);
  for (int i = 0; dirtyrate && i < n; ++i) {
    virDomainStatsRecordPtr r = (*records)[i];
    if (!Match("dirtyrate", virDomainGetName(r->dom))) continue;
    int max = r->nparams;
    virTypedParamsAddInt(&r->params, &r->nparams, &max, "dirtyrate.calc_status", 2);
    virTypedParamsAddLLong(&r->params, &r->nparams, &max, "dirtyrate.calc_start_time",
                           1764194300);
    virTypedParamsAddInt(&r->params, &r->nparams, &max, "dirtyrate.calc_period", 1);
    virTypedParamsAddLLong(&r->params, &r->nparams, &max, "dirtyrate.megabytes_per_second", 24);
  }
  return n;
}

int virDomainGetJobStats(virDomainPtr dom, int* type, virTypedParameterPtr* params, int* nparams,
                         unsigned int flags) {
  REAL(int, "virDomainGetJobStats", virDomainPtr, int*, virTypedParameterPtr*, int*,
       unsigned int);
  if (!Match("job", ANY)) return real(dom, type, params, nparams, flags);
  int max = 0;
  *params = NULL;
  *nparams = 0;
  *type = VIR_DOMAIN_JOB_NONE;
  if (Match("job", virDomainGetName(dom))) {
    *type = VIR_DOMAIN_JOB_UNBOUNDED;
    virTypedParamsAddInt(params, nparams, &max, VIR_DOMAIN_JOB_OPERATION,
                         VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT);
    virTypedParamsAddULLong(params, nparams, &max, VIR_DOMAIN_JOB_TIME_ELAPSED, 12000);
    virTypedParamsAddULLong(params, nparams, &max, VIR_DOMAIN_JOB_DATA_TOTAL, 1ULL << 30);
    virTypedParamsAddULLong(params, nparams, &max, VIR_DOMAIN_JOB_DATA_PROCESSED, 1ULL << 29);
    virTypedParamsAddULLong(params, nparams, &max, VIR_DOMAIN_JOB_DATA_REMAINING, 1ULL << 29);
    virTypedParamsAddULLong(params, nparams, &max, VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE, 2500);
    virTypedParamsAddULLong(params, nparams, &max, VIR_DOMAIN_JOB_MEMORY_PAGE_SIZE, 4096);
    virTypedParamsAddULLong(params, nparams, &max, VIR_DOMAIN_JOB_MEMORY_ITERATION, 3);
    virTypedParamsAddULLong(params, nparams, &max, VIR_DOMAIN_JOB_MEMORY_BPS, 1ULL << 27);
  }
  return 0;
}

int virConnectListAllStoragePools(virConnectPtr conn, virStoragePoolPtr** pools,
                                  unsigned int flags) {
  REAL(int, "virConnectListAllStoragePools", virConnectPtr, virStoragePoolPtr**, unsigned int);
  char* uri = virConnectGetURI(conn);
  int hang = Match("poolhang", uri);
  int fail = Match("poollist", uri);
  free(uri);
  if (hang > 0) sleep((unsigned)hang);
  if (fail) {
    real(conn, NULL, 1u << 30);  // invalid flags leave libvirt's own error on the thread
    return -1;
  }
  return real(conn, pools, flags);
}
