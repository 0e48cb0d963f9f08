//! Loading the embedded object, attaching it to a cgroup, pinning it in
//! bpffs, and re-adopting what an earlier daemon pinned.

use super::*;
use std::mem::size_of;

/// Names of the pinned objects inside a pin folder.
const LINK_PIN: &str = "link";
pub(super) const PINNED_MAPS: [&str; 7] = [
    maps::FLOW_STATS,
    maps::STATS_SLOTS,
    maps::TARGET_SLOTS,
    maps::FREE_SLOTS,
    maps::CONFIG,
    maps::COUNTERS,
    maps::EVENTS,
];

/// The folder under which every default pin folder lives.
pub const PIN_ROOT: &str = "/sys/fs/bpf/plume-cc";

/// Creates a pin folder and the folders above it. Retries when a folder
/// above vanishes under it: a daemon that stops removes [`PIN_ROOT`] once it
/// is empty ([`remove_pin_folder`]), which can fall between this one's
/// creation of the root and of its own folder in it.
fn create_pin_folder(pin_dir: &Path) -> std::io::Result<()> {
    let mut tries = 0;
    loop {
        match std::fs::create_dir_all(pin_dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 3 => tries += 1,
            done => return done,
        }
    }
}

/// Removes a datapath's (emptied) pin folder, and `root` too when the
/// folder was one of its default folders and the last one in it, so that a
/// host where every daemon has stopped keeps no empty `/sys/fs/bpf/plume-cc`.
/// `remove_dir` takes only an empty folder, so the pins of another datapath
/// keep both; failures are ignored (a folder that stays is harmless).
pub(crate) fn remove_pin_folder(pin_dir: &Path, root: &Path) {
    if std::fs::remove_dir(pin_dir).is_err() {
        return;
    }
    if pin_dir.parent() == Some(root) {
        let _ = std::fs::remove_dir(root);
    }
}

/// The default bpffs folder for a cgroup: `/sys/fs/bpf/plume-cc/NAME`, with
/// NAME from [`pin_name`].
pub fn default_pin_dir(cgroup: &Path) -> PathBuf {
    PathBuf::from(PIN_ROOT).join(pin_name(cgroup))
}

/// A cgroup path as one bpffs file name, reversibly (see
/// [`cgroup_of_pin_name`]), so that `status` and `cleanup` can say which
/// cgroup a datapath serves from its folder alone. `/` becomes `_`; ASCII
/// letters, digits and `-` stay; every other byte is `%XX`. Why escape at
/// all: bpffs refuses `.` in names (systemd's `*.slice` cgroups have one),
/// and a plain `_` would not tell `a_b` from `a/b`.
pub fn pin_name(cgroup: &Path) -> String {
    use std::os::unix::ffi::OsStrExt as _;
    let mut bytes = cgroup.as_os_str().as_bytes();
    while let Some(rest) = bytes.strip_prefix(b"/") {
        bytes = rest;
    }
    while let Some(rest) = bytes.strip_suffix(b"/") {
        bytes = rest;
    }
    let mut name = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'/' => name.push('_'),
            b'-' => name.push('-'),
            b if b.is_ascii_alphanumeric() => name.push(b as char),
            b => name.push_str(&format!("%{b:02X}")),
        }
    }
    name
}

/// The cgroup path a [`pin_name`] was made from (absolute), or None for a
/// name it cannot have made (a folder given by `--pin-dir`, or made by an
/// older plume-cc that escaped lossily).
pub fn cgroup_of_pin_name(name: &str) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt as _;
    let mut out = vec![b'/'];
    let mut bytes = name.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'_' => out.push(b'/'),
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                let v = u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?;
                // Only what pin_name escapes: anything else was not made by it.
                if v == b'/'
                    || v == b'-'
                    || v.is_ascii_alphanumeric()
                    || hex.iter().any(u8::is_ascii_lowercase)
                {
                    return None;
                }
                out.push(v);
            }
            b'-' => out.push(b),
            b if b.is_ascii_alphanumeric() => out.push(b),
            _ => return None,
        }
    }
    Some(PathBuf::from(std::ffi::OsString::from_vec(out)))
}

/// Whether a datapath is attached and pinned at `pin_dir` (its link pin is
/// the last thing [`Datapath::attach_pinned`] creates, so a daemon started on
/// a cgroup is controlling it once this holds).
pub fn attached_at(pin_dir: &Path) -> bool {
    pin_dir.join(LINK_PIN).exists()
}

/// Loads the object's sock_ops program `name` into the kernel and
/// attaches it to the cgroup v2 folder `cgroup`, as the one program there
/// (`CgroupAttachMode::Single`); the link detaches it when dropped (unless
/// pinned). The datapath's program and the benchmark's floor
/// (`floor.rs`) both come through here.
pub(super) fn attach_sock_ops(
    ebpf: &mut Ebpf,
    name: &str,
    cgroup: &Path,
) -> Result<FdLink, DatapathError> {
    let program: &mut SockOps = ebpf
        .program_mut(name)
        .ok_or_else(|| DatapathError::Load(format!("no program {name} in the object")))?
        .try_into()
        .map_err(load_error)?;
    program.load().map_err(load_error)?;
    let file = std::fs::File::open(cgroup).map_err(|e| DatapathError::Attach {
        path: cgroup.to_owned(),
        reason: e.to_string(),
    })?;
    let attach_err = |e: &dyn std::fmt::Display| {
        let reason = format!("{e:#}");
        if is_permission_error(&reason) {
            DatapathError::Permission(format!("attaching to {}: {reason}", cgroup.display()))
        } else {
            DatapathError::Attach {
                path: cgroup.to_owned(),
                reason,
            }
        }
    };
    let link_id = program
        .attach(file.as_fd(), CgroupAttachMode::Single)
        .map_err(|e| attach_err(&e))?;
    let link = program.take_link(link_id).map_err(|e| attach_err(&e))?;
    FdLink::try_from(link).map_err(|e| attach_err(&e))
}

/// The loaded program `name`'s (run count, total run time in ns) from the
/// kernel's statistics (counted only while `kernel.bpf_stats_enabled` is 1).
pub(super) fn run_stats(ebpf: &Ebpf, name: &str) -> Result<(u64, u64), DatapathError> {
    let program = ebpf
        .program(name)
        .ok_or_else(|| DatapathError::Load(format!("no program {name}")))?;
    let info = program.info().map_err(load_error)?;
    Ok((info.run_count(), info.run_time().as_nanos() as u64))
}

/// A load error as one line with its causes (aya keeps the errno in the
/// source chain: "failed to create map ...: Operation not permitted"), so
/// a missing capability is recognised wherever it surfaces.
pub(super) fn load_error(e: impl std::error::Error) -> DatapathError {
    let text = crate::errors::one_line(&e);
    if is_permission_error(&text) {
        DatapathError::Permission(text)
    } else {
        DatapathError::Load(text)
    }
}

/// Takes a map out of the loaded object, pinning it first if asked.
fn take_map(
    ebpf: &mut Ebpf,
    name: &'static str,
    pin_dir: Option<&Path>,
) -> Result<Map, DatapathError> {
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| DatapathError::Load(format!("no map {name} in the object")))?;
    if let Some(dir) = pin_dir {
        map.pin(dir.join(name)).map_err(|e| DatapathError::Attach {
            path: dir.to_owned(),
            reason: format!("pinning map {name}: {e}"),
        })?;
    }
    Ok(map)
}

/// The value size a map of this layout has (pins of another layout are
/// refused by it).
fn expected_value_size(name: &str) -> Option<usize> {
    match name {
        maps::FLOW_STATS | maps::FREE_SLOTS => Some(size_of::<u32>()),
        maps::STATS_SLOTS => Some(size_of::<StatsSlot>()),
        maps::TARGET_SLOTS => Some(size_of::<TargetSlot>()),
        maps::CONFIG => Some(size_of::<DatapathConfig>()),
        _ => None,
    }
}

/// Maps the slots of an array map (see [`SlotTable::map`]), after checking
/// that its values are `T`.
fn map_slots<T: slots::Sequenced>(
    data: &MapData,
    name: &'static str,
) -> Result<SlotTable<T>, DatapathError> {
    let info = data.info().map_err(map_err(name))?;
    if info.value_size() as usize != size_of::<T>() {
        return Err(DatapathError::Map {
            map: name,
            reason: format!(
                "values of {} bytes, this build's slots have {}",
                info.value_size(),
                size_of::<T>()
            ),
        });
    }
    SlotTable::map(data.fd().as_fd(), info.max_entries() as usize).map_err(|e| DatapathError::Map {
        map: name,
        reason: format!("mmap: {e} (was it created with BPF_F_MMAPABLE?)"),
    })
}

/// Takes a slot array out of the loaded object (pinning it first if
/// asked) and maps it.
fn take_slots<T: slots::Sequenced>(
    ebpf: &mut Ebpf,
    name: &'static str,
    pin_dir: Option<&Path>,
) -> Result<SlotTable<T>, DatapathError> {
    match take_map(ebpf, name, pin_dir)? {
        Map::Array(data) => map_slots(&data, name),
        _ => Err(DatapathError::Load(format!("{name} is not an array"))),
    }
}

/// Checks that the pins in `dir` have this build's layout: every map
/// pinned, with the value sizes of this build. Pins of an older plume-cc
/// (before the per-flow slots: no `PLUME_SLOTS`, 152-byte values in
/// `PLUME_FLOWS`) fail here with [`DatapathError::Layout`] instead of being
/// misread.
fn check_pinned_layout(dir: &Path) -> Result<(), DatapathError> {
    let layout = |what: String| DatapathError::Layout {
        dir: dir.to_owned(),
        what,
    };
    for name in PINNED_MAPS {
        let path = dir.join(name);
        if !path.exists() {
            return Err(layout(format!("no map {name}")));
        }
        let Some(want) = expected_value_size(name) else {
            continue;
        };
        let data = MapData::from_pin(&path).map_err(map_err(name))?;
        let got = data.info().map_err(map_err(name))?.value_size() as usize;
        if got != want {
            return Err(layout(format!(
                "{name} has {got}-byte values, this build {want}"
            )));
        }
    }
    Ok(())
}

/// Takes a typed map out of the loaded object, pinning it first if asked.
fn take<T>(ebpf: &mut Ebpf, name: &'static str, pin_dir: Option<&Path>) -> Result<T, DatapathError>
where
    T: TryFrom<Map, Error = aya::maps::MapError>,
{
    let map = take_map(ebpf, name, pin_dir)?;
    T::try_from(map).map_err(map_err(name))
}

fn from_pin<T>(dir: &Path, name: &'static str, wrap: fn(MapData) -> Map) -> Result<T, DatapathError>
where
    T: TryFrom<Map, Error = aya::maps::MapError>,
{
    let data = MapData::from_pin(dir.join(name)).map_err(map_err(name))?;
    T::try_from(wrap(data)).map_err(map_err(name))
}

impl Datapath {
    /// Loads the embedded object and attaches its program to the cgroup v2
    /// folder `cgroup` (which must exist). Detached when dropped.
    pub fn attach(cgroup: &Path, config: DatapathConfig) -> Result<Self, DatapathError> {
        Self::attach_with_capacity(cgroup, config, plume_cc_common::MAX_FLOWS)
    }

    /// Like [`Datapath::attach`] with flow maps of `max_flows` entries
    /// (tests of the map-full path use a tiny one).
    pub fn attach_with_capacity(
        cgroup: &Path,
        config: DatapathConfig,
        max_flows: u32,
    ) -> Result<Self, DatapathError> {
        let (mut dp, link) = Self::load_and_attach(cgroup, None, max_flows)?;
        dp.link = Some(LinkHold::Owned(link));
        dp.set_config(config)?;
        Ok(dp)
    }

    /// Attaches to `cgroup` with program, link and maps pinned under
    /// `pin_dir` (on bpffs). If a live pinned link is already there (a
    /// previous daemon that stopped or crashed), re-adopts it and its flows
    /// instead of loading a second program.
    pub fn attach_pinned(
        cgroup: &Path,
        config: DatapathConfig,
        pin_dir: &Path,
    ) -> Result<Self, DatapathError> {
        check_capabilities()?;
        cgroup::check_cgroup2(cgroup)?;
        check_bpffs(pin_dir)?;
        if attached_at(pin_dir) {
            let mut dp = Self::adopt(cgroup, pin_dir)?;
            dp.set_config(config)?;
            return Ok(dp);
        }
        let pin_err = |what: &str, e: &dyn std::fmt::Display| DatapathError::Attach {
            path: pin_dir.to_owned(),
            reason: format!("pinning {what}: {e}"),
        };
        create_pin_folder(pin_dir).map_err(|e| pin_err("folder", &e))?;
        let (mut dp, link) =
            Self::load_and_attach(cgroup, Some(pin_dir), plume_cc_common::MAX_FLOWS)?;
        let pinned = link
            .pin(pin_dir.join(LINK_PIN))
            .map_err(|e| pin_err("link", &e))?;
        dp.link = Some(LinkHold::Pinned(pinned));
        dp.pin_dir = Some(pin_dir.to_owned());
        dp.set_config(config)?;
        Ok(dp)
    }

    /// Opens the pinned link and maps of a running datapath (read-only use
    /// such as `plume-cc status`, or re-adoption by a restarted daemon).
    pub fn adopt(cgroup: &Path, pin_dir: &Path) -> Result<Self, DatapathError> {
        let link =
            PinnedLink::from_pin(pin_dir.join(LINK_PIN)).map_err(|e| DatapathError::Attach {
                path: pin_dir.to_owned(),
                reason: format!("opening the pinned link: {e}"),
            })?;
        check_pinned_layout(pin_dir)?;
        let slots_of = |name: &'static str| -> Result<MapData, DatapathError> {
            MapData::from_pin(pin_dir.join(name)).map_err(map_err(name))
        };
        Ok(Self {
            flows: from_pin(pin_dir, maps::FLOW_STATS, Map::HashMap)?,
            stats_slots: map_slots(&slots_of(maps::STATS_SLOTS)?, maps::STATS_SLOTS)?,
            target_slots: map_slots(&slots_of(maps::TARGET_SLOTS)?, maps::TARGET_SLOTS)?,
            free: from_pin(pin_dir, maps::FREE_SLOTS, Map::Stack)?,
            socket_slots: None,
            last_read: Vec::new(),
            torn_reads: AtomicU64::new(0),
            torn_published: 0,
            config: from_pin(pin_dir, maps::CONFIG, Map::Array)?,
            counters: from_pin(pin_dir, maps::COUNTERS, Map::PerCpuArray)?,
            events: from_pin(pin_dir, maps::EVENTS, Map::RingBuf).ok(),
            link: Some(LinkHold::Pinned(link)),
            cgroup: cgroup.to_owned(),
            pin_dir: Some(pin_dir.to_owned()),
            adopted: true,
            logger: None,
            _ebpf: None,
        })
    }

    fn load_and_attach(
        cgroup: &Path,
        pin_dir: Option<&Path>,
        max_flows: u32,
    ) -> Result<(Self, FdLink), DatapathError> {
        if EBPF_OBJECT.is_empty() {
            return Err(DatapathError::NoObject);
        }
        check_capabilities()?;
        cgroup::check_cgroup2(cgroup)?;
        raise_memlock_limit();
        let max_flows = max_flows.max(1);
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(maps::FLOW_STATS, max_flows)
            .map_max_entries(maps::STATS_SLOTS, max_flows)
            .map_max_entries(maps::TARGET_SLOTS, max_flows)
            .map_max_entries(maps::FREE_SLOTS, max_flows)
            .load(EBPF_OBJECT)
            .map_err(load_error)?;
        // Every slot goes on the free list before the program can run, so
        // the first flows find slots. One system call per slot: 65,536
        // pushes take tens of milliseconds, once per load (a stack map has
        // no batched update).
        {
            let map = ebpf
                .map_mut(maps::FREE_SLOTS)
                .ok_or_else(|| DatapathError::Load(format!("no map {}", maps::FREE_SLOTS)))?;
            let mut free: Stack<&mut MapData, u32> =
                Stack::try_from(map).map_err(map_err(maps::FREE_SLOTS))?;
            for slot in plume_cc_common::free_slot_fill_order(max_flows) {
                free.push(slot, 0).map_err(map_err(maps::FREE_SLOTS))?;
            }
        }
        let logger = aya_log::EbpfLogger::init(&mut ebpf).ok();
        let link = attach_sock_ops(&mut ebpf, PROGRAM_NAME, cgroup)?;
        let dp = Self {
            flows: take(&mut ebpf, maps::FLOW_STATS, pin_dir)?,
            stats_slots: take_slots(&mut ebpf, maps::STATS_SLOTS, pin_dir)?,
            target_slots: take_slots(&mut ebpf, maps::TARGET_SLOTS, pin_dir)?,
            free: take(&mut ebpf, maps::FREE_SLOTS, pin_dir)?,
            // Never pinned: the program holds it, its entries live with
            // their sockets, and adopting pins of an earlier build (which
            // had no such map) keeps working.
            socket_slots: Some(take(&mut ebpf, maps::SOCKET_SLOTS, None)?),
            last_read: Vec::new(),
            torn_reads: AtomicU64::new(0),
            torn_published: 0,
            config: take(&mut ebpf, maps::CONFIG, pin_dir)?,
            counters: take(&mut ebpf, maps::COUNTERS, pin_dir)?,
            events: take(&mut ebpf, maps::EVENTS, pin_dir).ok(),
            link: None,
            cgroup: cgroup.to_owned(),
            pin_dir: None,
            adopted: false,
            logger,
            _ebpf: Some(ebpf),
        };
        Ok((dp, link))
    }
}

/// Checks that the folder for pins is on a mounted bpffs.
fn check_bpffs(pin_dir: &Path) -> Result<(), DatapathError> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let on_bpffs = mounts.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 2 && f[2] == "bpf" && pin_dir.starts_with(f[1])
    });
    if on_bpffs {
        Ok(())
    } else {
        Err(DatapathError::NoBpffs(pin_dir.to_owned()))
    }
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; lift it so loading
/// works there too (a no-op on newer kernels).
fn raise_memlock_limit() {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid struct.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) };
    if rc != 0 {
        tracing::debug!("could not raise RLIMIT_MEMLOCK");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stopping datapath takes the pin root with its folder only when it
    /// was the root's last folder, and never a folder outside the root.
    #[test]
    fn the_pin_root_goes_with_its_last_folder_only() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("plume-cc");
        let (a, b) = (root.join("a"), root.join("b"));
        create_pin_folder(&a).unwrap();
        create_pin_folder(&b).unwrap();
        remove_pin_folder(&a, &root);
        assert!(
            !a.exists() && b.exists(),
            "another datapath's folder keeps the root"
        );
        remove_pin_folder(&b, &root);
        assert!(
            !root.exists(),
            "the last folder takes the empty root with it"
        );
        // A folder elsewhere (`run --pin-dir`) leaves its parent alone.
        let other = tmp.path().join("mine").join("pins");
        create_pin_folder(&other).unwrap();
        remove_pin_folder(&other, &root);
        assert!(!other.exists() && other.parent().unwrap().exists());
        // A folder that still holds pins is kept, and so is the root.
        create_pin_folder(&a).unwrap();
        std::fs::write(a.join("PLUME_LINK"), b"").unwrap();
        remove_pin_folder(&a, &root);
        assert!(a.exists() && root.exists());
    }

    /// The pin folder's name gives back the cgroup, whatever its characters.
    #[test]
    fn pin_names_round_trip_to_the_cgroup() {
        for cg in [
            "/sys/fs/cgroup/plume",
            "/sys/fs/cgroup/plume.slice/plume-cc.slice",
            "/sys/fs/cgroup/a_b/a/b",
            "/sys/fs/cgroup/with space/%41/ü",
        ] {
            let name = pin_name(Path::new(cg));
            assert!(!name.contains('.') && !name.contains('/'), "{name}");
            assert_eq!(cgroup_of_pin_name(&name), Some(PathBuf::from(cg)), "{name}");
        }
        // Compatible with the old names where the path had nothing to escape.
        assert_eq!(
            default_pin_dir(Path::new("/sys/fs/cgroup/plume-test/")),
            Path::new("/sys/fs/bpf/plume-cc/sys_fs_cgroup_plume-test")
        );
        assert_eq!(
            pin_name(Path::new("/sys/fs/cgroup/a_b")),
            "sys_fs_cgroup_a%5Fb"
        );
        assert_ne!(
            pin_name(Path::new("/sys/fs/cgroup/a_b")),
            pin_name(Path::new("/sys/fs/cgroup/a/b"))
        );
    }

    #[test]
    fn names_it_cannot_have_made_give_no_cgroup() {
        for name in ["test.follow", "x%2", "x%zz", "x%41", "x%2e", "a b"] {
            assert_eq!(cgroup_of_pin_name(name), None, "{name}");
        }
    }
}
