/**
 * The sandbox's seccomp filter, compiled here to classic BPF (the bytes bubblewrap's `--seccomp FD`
 * loads, and the `unshare` mechanism's launcher loads with prctl(PR_SET_SECCOMP); the worker's
 * calls load it too). It is a deny list over what model-written code never needs, chosen so that Python, the
 * shell and numeric libraries run unchanged, and documented in docs/SECURITY.md:
 *
 * - a foreign architecture (32-bit `int 0x80`, x32) kills the process: no second syscall table;
 * - mounts and namespaces (mount, pivot_root, unshare, setns, the new mount API, clone with any
 *   CLONE_NEW* flag; clone3, whose flags cannot be inspected, answers ENOSYS so libc falls back
 *   to clone): the sandbox's view cannot be rearranged from inside;
 * - kernel attack surface with no use here: keyrings, bpf, perf_event_open, userfaultfd,
 *   io_uring, ptrace and cross-process memory access, kcmp/pidfd_getfd, handle-based opens,
 *   fanotify, NUMA page moves, modules, kexec, reboot, swap, syslog, acct, quotas, clock
 *   setting, iopl/ioperm, personality changes;
 * - sockets other than AF_UNIX, AF_INET, AF_INET6 (EAFNOSUPPORT): no netlink, packet or vsock
 *   (vsock is not covered by the network namespace and reaches a VM's host);
 * - ioctl TIOCSTI/TIOCLINUX: no typing into a terminal.
 *
 * Denied calls fail with EPERM (a clean OSError in Python) rather than killing the program.
 */

/** The architectures with a syscall table here (Deno.build.arch names). */
export type SeccompArch = "x86_64" | "aarch64";

const AUDIT_ARCH: Record<SeccompArch, number> = { x86_64: 0xc000003e, aarch64: 0xc00000b7 };

/** Syscall numbers of the denied calls (x86_64: asm/unistd_64.h; aarch64: asm-generic). */
const DENIED: Record<SeccompArch, Record<string, number>> = {
  x86_64: {
    mount: 165,
    umount2: 166,
    pivot_root: 155,
    chroot: 161,
    unshare: 272,
    setns: 308,
    open_tree: 428,
    move_mount: 429,
    fsopen: 430,
    fsconfig: 431,
    fsmount: 432,
    fspick: 433,
    mount_setattr: 442,
    add_key: 248,
    request_key: 249,
    keyctl: 250,
    ptrace: 101,
    process_vm_readv: 310,
    process_vm_writev: 311,
    kcmp: 312,
    pidfd_getfd: 438,
    perf_event_open: 298,
    bpf: 321,
    userfaultfd: 323,
    lookup_dcookie: 212,
    init_module: 175,
    finit_module: 313,
    delete_module: 176,
    create_module: 174,
    get_kernel_syms: 177,
    query_module: 178,
    kexec_load: 246,
    kexec_file_load: 320,
    reboot: 169,
    swapon: 167,
    swapoff: 168,
    syslog: 103,
    acct: 163,
    quotactl: 179,
    quotactl_fd: 443,
    nfsservctl: 180,
    vhangup: 153,
    uselib: 134,
    ioperm: 173,
    iopl: 172,
    _sysctl: 156,
    settimeofday: 164,
    clock_settime: 227,
    adjtimex: 159,
    clock_adjtime: 305,
    mbind: 237,
    migrate_pages: 256,
    move_pages: 279,
    name_to_handle_at: 303,
    open_by_handle_at: 304,
    fanotify_init: 300,
    io_uring_setup: 425,
    io_uring_enter: 426,
    io_uring_register: 427,
  },
  aarch64: {
    mount: 40,
    umount2: 39,
    pivot_root: 41,
    chroot: 51,
    unshare: 97,
    setns: 268,
    open_tree: 428,
    move_mount: 429,
    fsopen: 430,
    fsconfig: 431,
    fsmount: 432,
    fspick: 433,
    mount_setattr: 442,
    add_key: 217,
    request_key: 218,
    keyctl: 219,
    ptrace: 117,
    process_vm_readv: 270,
    process_vm_writev: 271,
    kcmp: 272,
    pidfd_getfd: 438,
    perf_event_open: 241,
    bpf: 280,
    userfaultfd: 282,
    lookup_dcookie: 18,
    init_module: 105,
    finit_module: 273,
    delete_module: 106,
    kexec_load: 104,
    kexec_file_load: 294,
    reboot: 142,
    swapon: 224,
    swapoff: 225,
    syslog: 116,
    acct: 89,
    quotactl: 60,
    quotactl_fd: 443,
    nfsservctl: 42,
    vhangup: 58,
    settimeofday: 170,
    clock_settime: 112,
    adjtimex: 171,
    clock_adjtime: 266,
    mbind: 235,
    migrate_pages: 238,
    move_pages: 239,
    name_to_handle_at: 264,
    open_by_handle_at: 265,
    fanotify_init: 262,
    io_uring_setup: 425,
    io_uring_enter: 426,
    io_uring_register: 427,
  },
};

/** Calls whose arguments are inspected. */
const SPECIAL: Record<
  SeccompArch,
  Record<"clone" | "clone3" | "socket" | "ioctl" | "personality", number>
> = {
  x86_64: { clone: 56, clone3: 435, socket: 41, ioctl: 16, personality: 135 },
  aarch64: { clone: 220, clone3: 435, socket: 198, ioctl: 29, personality: 92 },
};

/** CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET. */
const CLONE_NEW_MASK = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 |
  0x20000000 | 0x40000000;
const AF_ALLOWED = [1, 2, 10]; // AF_UNIX, AF_INET, AF_INET6
const TIOCSTI = 0x5412;
const TIOCLINUX = 0x541c;
const EPERM = 1;
const ENOSYS = 38;
const EAFNOSUPPORT = 97;

// Classic BPF (linux/filter.h, linux/seccomp.h).
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JGE_K = 0x35;
const JSET_K = 0x45;
const RET_K = 0x06;
const RET_KILL_PROCESS = 0x80000000;
const RET_ERRNO = 0x00050000;
const RET_ALLOW = 0x7fff0000;
// struct seccomp_data: nr (u32) at 0, arch (u32) at 4, args (u64 each) from 16; the low half of
// an argument is at 16 + 8i on the little-endian machines here.
const OFF_NR = 0;
const OFF_ARCH = 4;
const argLow = (i: number) => 16 + 8 * i;

type Insn =
  | { op: number; k: number }
  | { op: number; k: number; jt: string | 0; jf: string | 0 }
  | { label: string };

/** Assemble with forward label jumps (BPF jump offsets are relative and forward only). */
function assemble(prog: Insn[]): Uint8Array {
  const at = new Map<string, number>();
  const code: Exclude<Insn, { label: string }>[] = [];
  for (const i of prog) {
    if ("label" in i) at.set(i.label, code.length);
    else code.push(i);
  }
  const out = new Uint8Array(code.length * 8);
  const view = new DataView(out.buffer);
  code.forEach((i, pc) => {
    const rel = (t: string | 0 | undefined): number => {
      if (t === undefined || t === 0) return 0;
      const d = at.get(t)! - pc - 1;
      if (!(d >= 0 && d <= 255)) throw new Error(`seccomp: jump to ${t} out of range (${d})`);
      return d;
    };
    view.setUint16(pc * 8, i.op, true);
    view.setUint8(pc * 8 + 2, "jt" in i ? rel(i.jt) : 0);
    view.setUint8(pc * 8 + 3, "jf" in i ? rel(i.jf) : 0);
    view.setUint32(pc * 8 + 4, i.k >>> 0, true);
  });
  return out;
}

/**
 * The filter for `arch`, as the bytes of a `struct sock_filter` array.
 *
 * @param arch The machine's architecture (Deno.build.arch).
 * @returns The compiled program, 8 bytes per instruction.
 * @throws {Error} For an architecture without a syscall table here.
 */
export function sandboxSeccompFilter(arch: string = Deno.build.arch): Uint8Array {
  if (arch !== "x86_64" && arch !== "aarch64") {
    throw new Error(`no seccomp syscall table for the '${arch}' architecture`);
  }
  const s = SPECIAL[arch];
  const ld = (k: number): Insn => ({ op: LD_W_ABS, k });
  const jeq = (k: number, jt: string | 0, jf: string | 0 = 0): Insn => ({ op: JEQ_K, k, jt, jf });
  const ret = (k: number): Insn => ({ op: RET_K, k });
  const prog: Insn[] = [
    ld(OFF_ARCH),
    jeq(AUDIT_ARCH[arch], "native"),
    ret(RET_KILL_PROCESS),
    { label: "native" },
    ld(OFF_NR),
  ];
  // x32 calls share the x86_64 arch value and set bit 30 of the number.
  if (arch === "x86_64") prog.push({ op: JGE_K, k: 0x40000000, jt: "kill", jf: 0 });
  prog.push(
    jeq(s.clone, "clone"),
    jeq(s.clone3, "enosys"),
    jeq(s.socket, "socket"),
    jeq(s.ioctl, "ioctl"),
    jeq(s.personality, "personality"),
  );
  for (const nr of Object.values(DENIED[arch])) prog.push(jeq(nr, "eperm"));
  prog.push(
    ret(RET_ALLOW),
    { label: "clone" },
    ld(argLow(0)),
    { op: JSET_K, k: CLONE_NEW_MASK, jt: "eperm", jf: "allow" },
    { label: "socket" },
    ld(argLow(0)),
    ...AF_ALLOWED.map((af) => jeq(af, "allow")),
    ret(RET_ERRNO | EAFNOSUPPORT),
    { label: "ioctl" },
    ld(argLow(1)),
    jeq(TIOCSTI, "eperm"),
    jeq(TIOCLINUX, "eperm"),
    ret(RET_ALLOW),
    { label: "personality" },
    ld(argLow(0)),
    jeq(0, "allow"), // PER_LINUX
    jeq(0xffffffff, "allow"), // query
    { label: "eperm" },
    ret(RET_ERRNO | EPERM),
    { label: "enosys" },
    ret(RET_ERRNO | ENOSYS),
    { label: "kill" },
    ret(RET_KILL_PROCESS),
    { label: "allow" },
    ret(RET_ALLOW),
  );
  return assemble(prog);
}

/** Names of the calls the filter denies outright on `arch` (for docs and tests). */
export function deniedSyscalls(arch: SeccompArch): string[] {
  return Object.keys(DENIED[arch]);
}
