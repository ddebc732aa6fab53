//! Append-only record files: the framing the journal and the embedded
//! chain's block log share.
//!
//! A file is an 8-byte magic, then records `[len: u32 LE][crc32: u32 LE]
//! [body]`, bodies never empty. A crash can leave the last record half
//! written (or, on some file systems, a tail of zeros), and a bad disk can
//! flip bits anywhere; reading stops at the first record that is empty,
//! runs past the end or fails its CRC, and the file is cut there, so
//! appending resumes on a clean edge. Nothing is cut silently or thrown
//! away: the cut bytes are first saved beside the file (`<name>.cut-<unix
//! seconds>`), and a warning names them.
//!
//! An owner whose records stand on their own (the journal: each event
//! carries its own session and number) may ask for the intact records
//! past the damage too (`PastDamage::Keep`): the bytes after it are
//! searched for the next place where two records in a row (or one ending
//! the file) pass their checks, reading resumes there, and the file is
//! rewritten with every intact record. The block log keeps the cut (a
//! block after a lost one cannot be replayed); when intact records were
//! cut with the damage, their saved file is marked unclaimed
//! (`<name>.cut-<secs>.unclaimed`, written and synced before the file is
//! cut) until the owner has put what they recorded somewhere safe and
//! claims it (`unclaimed_cuts`, `claim_cut`): a crash in between leaves
//! it unclaimed, to be found again at the next open.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Record bodies, in file order.
pub type Records = Vec<Vec<u8>>;

/// Longest record body accepted; anything longer is corruption.
pub const MAX_RECORD: usize = 16 << 20;

/// An open record file, positioned at its end.
pub struct RecordFile {
    path: PathBuf,
    file: File,
    len: u64,
    /// Rewrites finished so far: one begun before another finished is stale.
    generation: u64,
    /// Rewrites begun so far (each writes a file of its own).
    begun: u64,
}

/// What `RecordFile::open` does with intact records after a damaged one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PastDamage {
    /// Cut the file at the damage; the records after it are only in the
    /// saved bytes (an unclaimed cut, when there are any).
    Cut,
    /// Keep them: the file is rewritten without the damaged bytes.
    Keep,
}

/// What opening a record file found.
pub struct Opened {
    pub file: RecordFile,
    /// Every intact record's body, in order.
    pub records: Vec<Vec<u8>>,
    /// A sentence for the log when a tail was cut or the file set aside.
    pub warning: Option<String>,
}

impl RecordFile {
    /// Opens (or creates) the file and reads every intact record. A file
    /// that does not start with `magic` is renamed aside, never deleted.
    /// New files of rewrites that a crash cut short are removed (the file
    /// itself was whole until a rewrite's rename). The caller holds
    /// whatever keeps other writers out.
    pub fn open(path: &Path, magic: &[u8; 8], past_damage: PastDamage) -> io::Result<Opened> {
        remove_unfinished_rewrites(path);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut warning = None;
        if !bytes.is_empty() && (bytes.len() < 8 || &bytes[..8] != magic) {
            drop(file);
            let aside = aside_path(path, UNREADABLE)?;
            std::fs::rename(path, &aside)?;
            warning = Some(format!(
                "{} is not a Particle Forge file of this kind; moved it to {} and started a new one",
                path.display(),
                aside.display()
            ));
            file = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .open(path)?;
            bytes.clear();
        }
        if bytes.is_empty() {
            file.write_all(magic)?;
            file.sync_all()?;
            sync_dir(path)?;
            bytes.extend_from_slice(magic);
        }
        let (mut records, good) = parse(&bytes[8..]);
        let good = 8 + good as u64;
        let mut len = bytes.len() as u64;
        let mut kept_after = 0;
        if good < len {
            let damaged = &bytes[good as usize..];
            let later = salvage(damaged);
            let cut = later.is_empty() || past_damage == PastDamage::Cut;
            // Intact records cut: the owner claims them once it has them.
            let unclaimed = cut && !later.is_empty();
            let saved = match save_cut(path, damaged, unclaimed) {
                Ok(to) => format!("the bytes are saved in {}", claimed_name(&to).display()),
                Err(e) if unclaimed => {
                    // Cutting now would lose what they recorded.
                    return Err(io::Error::other(format!(
                        "{}: intact records follow damage at offset {good}, and the bytes could not be saved before cutting them ({e})",
                        path.display()
                    )));
                }
                Err(e) => format!("the bytes could not be saved ({e})"),
            };
            let w = if cut {
                file.set_len(good)?;
                file.sync_all()?;
                len = good;
                format!(
                    "{}: cut a torn or corrupt tail of {} bytes at offset {good} ({} intact records kept); {saved}",
                    path.display(),
                    damaged.len(),
                    records.len()
                )
            } else {
                let skipped = damaged.len() - later.iter().map(|b| b.len() + 8).sum::<usize>();
                let w = format!(
                    "{}: skipped {skipped} damaged bytes from offset {good} and kept the {} intact records after them ({} before); {saved}",
                    path.display(),
                    later.len(),
                    records.len()
                );
                kept_after = later.len();
                records.extend(later);
                w
            };
            warning = Some(match warning {
                Some(first) => format!("{first}; {w}"),
                None => w,
            });
        }
        file.seek(SeekFrom::End(0))?;
        let mut file = RecordFile {
            path: path.to_path_buf(),
            file,
            len,
            generation: 0,
            begun: 0,
        };
        if kept_after > 0 {
            // One rename: a crash leaves the damaged file (read the same
            // way next time) or the clean one, never a file without them.
            file.rewrite(magic, records.iter().map(|b| b.as_slice()))?;
        }
        Ok(Opened {
            file,
            records,
            warning,
        })
    }

    /// The intact records of a file some other process may be appending
    /// to: nothing is cut, created or moved. A missing file has none.
    pub fn read_only(path: &Path, magic: &[u8; 8]) -> io::Result<Vec<Vec<u8>>> {
        Ok(parse(&read_checked(path, magic)?).0)
    }

    /// `read_only`, and the intact records found past damage inside the
    /// file (none for a tail still being written): what `open` with
    /// `PastDamage::Keep` would read, with nothing written.
    pub fn read_only_past_damage(path: &Path, magic: &[u8; 8]) -> io::Result<(Records, Records)> {
        let bytes = read_checked(path, magic)?;
        let (records, good) = parse(&bytes);
        Ok((records, salvage(&bytes[good..])))
    }

    /// Appends records with one write (not yet synced).
    pub fn append<'a>(&mut self, bodies: impl IntoIterator<Item = &'a [u8]>) -> io::Result<()> {
        #[cfg(test)]
        if full_disk::is_full(&self.path) {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "no space left on device",
            ));
        }
        let mut buf = Vec::new();
        for body in bodies {
            frame(body, &mut buf);
        }
        if buf.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.write_all(&buf) {
            // Leave no half record behind for the next append to bury.
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Flushes the file's data to the disk.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// A second handle on the same file, to sync without holding a lock.
    pub fn sync_handle(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len <= 8
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file with one holding just `bodies`: written beside it,
    /// synced, then renamed over it, so a crash leaves one or the other.
    /// The three steps below in one go, for an owner nobody else writes
    /// through meanwhile.
    pub fn rewrite<'a>(
        &mut self,
        magic: &[u8; 8],
        bodies: impl IntoIterator<Item = &'a [u8]>,
    ) -> io::Result<()> {
        let mut rewrite = self.begin_rewrite(magic, bodies);
        rewrite.write()?;
        drop(self.finish_rewrite(rewrite)?);
        sync_dir(&self.path)
    }

    /// Starts a rewrite holding just `bodies` (only framed here, in memory).
    /// The slow part, [`Rewrite::write`], needs no access to this file, so
    /// an owner that shares the file behind a lock runs it with the lock
    /// released and appends go on meanwhile; [`RecordFile::finish_rewrite`]
    /// then carries those appends over.
    pub fn begin_rewrite<'a>(
        &mut self,
        magic: &[u8; 8],
        bodies: impl IntoIterator<Item = &'a [u8]>,
    ) -> Rewrite {
        let mut buf = magic.to_vec();
        for body in bodies {
            frame(body, &mut buf);
        }
        self.begun += 1;
        Rewrite {
            tmp: rewrite_path(&self.path, self.begun),
            buf,
            from: self.len,
            generation: self.generation,
            created: false,
            written: false,
        }
    }

    /// Puts a written rewrite in place of the file: the records appended
    /// since it was begun are copied after its own, then it is renamed over
    /// the file and appends go to it. The rename is durable once the caller
    /// has run [`sync_dir`] on the path (it may do so without its lock,
    /// before it counts on a sync of anything appended since). A rewrite
    /// begun on an earlier version of the file, or not written, is refused
    /// and removed; the file is left as it was.
    pub fn finish_rewrite(&mut self, mut rewrite: Rewrite) -> io::Result<Replaced> {
        if rewrite.generation != self.generation || !rewrite.written || rewrite.from > self.len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a rewrite begun on another version of the file, or never written",
            ));
        }
        // Opened before the rename, which it survives: once the rename is
        // done nothing is left to fail, and appends go to the new file.
        let mut new = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&rewrite.tmp)?;
        let mut tail = vec![0; (self.len - rewrite.from) as usize];
        if !tail.is_empty() {
            self.file.seek(SeekFrom::Start(rewrite.from))?;
            let read = self.file.read_exact(&mut tail);
            self.file.seek(SeekFrom::End(0))?;
            read?;
            new.write_all(&tail)?;
        }
        std::fs::rename(&rewrite.tmp, &self.path)?;
        rewrite.created = false;
        let old = std::mem::replace(&mut self.file, new);
        self.len = (rewrite.buf.len() + tail.len()) as u64;
        self.generation += 1;
        Ok(Replaced { _file: old })
    }
}

/// The file a rewrite replaced, still open: closing it frees its blocks,
/// which for a big file takes a millisecond or more, so an owner behind a
/// lock drops this after releasing it.
#[must_use = "dropped here, the old file is freed here"]
pub struct Replaced {
    _file: File,
}

/// A replacement for a record file being made (`RecordFile::begin_rewrite`);
/// its file is removed if it is dropped before it took the old one's place.
pub struct Rewrite {
    tmp: PathBuf,
    buf: Vec<u8>,
    /// The file's length and version when the rewrite was begun.
    from: u64,
    generation: u64,
    /// Its file may exist / is complete and synced.
    created: bool,
    written: bool,
}

impl Drop for Rewrite {
    fn drop(&mut self) {
        if self.created {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl Rewrite {
    /// Writes the new file beside the old one and syncs it.
    pub fn write(&mut self) -> io::Result<()> {
        // Marked first, so a half-written file is removed too.
        self.created = true;
        let mut f = File::create(&self.tmp)?;
        f.write_all(&self.buf)?;
        f.sync_all()?;
        self.written = true;
        Ok(())
    }
}

fn frame(body: &[u8], out: &mut Vec<u8>) {
    assert!(
        !body.is_empty() && body.len() <= MAX_RECORD,
        "record body empty or over 16 MiB"
    );
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(body);
}

/// The bytes of the file at `path` after its magic (none if it is
/// missing), never writing; an error if it is not a file of this kind.
fn read_checked(path: &Path, magic: &[u8; 8]) -> io::Result<Vec<u8>> {
    let mut bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    if bytes.len() < 8 || &bytes[..8] != magic {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a Particle Forge file of this kind",
        ));
    }
    bytes.drain(..8);
    Ok(bytes)
}

/// The intact records at the start of `bytes` and how many bytes they span.
fn parse(bytes: &[u8]) -> (Vec<Vec<u8>>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(body) = record_at(bytes, at) {
        records.push(body.to_vec());
        at += 8 + body.len();
    }
    (records, at)
}

/// The body of the record at `at`, if one is there whole: not empty (a
/// tail of zeros would otherwise read as records), not past the end, and
/// its CRC matching.
fn record_at(bytes: &[u8], at: usize) -> Option<&[u8]> {
    let head = bytes.get(at..at + 8)?;
    let len = u32::from_le_bytes(head[..4].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(head[4..].try_into().unwrap());
    if len == 0 || len > MAX_RECORD {
        return None;
    }
    let body = bytes.get(at + 8..at + 8 + len)?;
    (crc32fast::hash(body) == crc).then_some(body)
}

/// The intact records after damaged bytes at the start of `bytes`: reading
/// resumes wherever a record passes its checks and is followed by another
/// that does (or ends the input), so a stray match of a CRC in the damage
/// (one in 2^32 per offset) is not taken for a record; damage further on is
/// skipped the same way.
fn salvage(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    let mut at = 1;
    while at + 8 < bytes.len() {
        let Some(body) = record_at(bytes, at) else {
            at += 1;
            continue;
        };
        let next = at + 8 + body.len();
        if next != bytes.len() && record_at(bytes, next).is_none() {
            at += 1;
            continue;
        }
        let (run, spans) = parse(&bytes[at..]);
        records.extend(run);
        at += spans + 1;
    }
    records
}

/// What `open` sets aside beside a file, as `<name>.<kind>-<unix
/// seconds>[-n]`: the bytes cut from a damaged tail, and a whole file that
/// was not one of ours.
const CUT: &str = "cut";
const UNREADABLE: &str = "unreadable";
/// The suffix of a cut whose intact records the owner has not claimed.
const UNCLAIMED: &str = ".unclaimed";

/// `file` (a saved cut) without the unclaimed suffix.
fn claimed_name(file: &Path) -> PathBuf {
    let name = file.as_os_str().to_string_lossy();
    PathBuf::from(name.strip_suffix(UNCLAIMED).unwrap_or(&name).to_string())
}

/// The cuts saved beside `path` whose intact records their owner has not
/// claimed yet (oldest first), each with those records.
pub fn unclaimed_cuts(path: &Path) -> io::Result<Vec<(PathBuf, Records)>> {
    let (Some(dir), Some(stem)) = (path.parent(), path.file_stem()) else {
        return Ok(Vec::new());
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.{CUT}-", stem.to_string_lossy());
    // Oldest first: by `<secs>`, then by the `-n` of a second cut within
    // the same second.
    let mut found: Vec<((u64, u64), PathBuf)> = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stamp = name.strip_prefix(&prefix)?.strip_suffix(UNCLAIMED)?;
            let (secs, n) = stamp.split_once('-').unwrap_or((stamp, "0"));
            Some(((secs.parse().ok()?, n.parse().ok()?), e.path()))
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .map(|(_, file)| {
            let bytes = std::fs::read(&file)?;
            Ok((file, salvage(&bytes)))
        })
        .collect()
}

/// Marks an unclaimed cut as taken over (renames it to its plain name);
/// returns that name.
pub fn claim_cut(file: &Path) -> io::Result<PathBuf> {
    let to = claimed_name(file);
    std::fs::rename(file, &to)?;
    sync_dir(&to)?;
    Ok(to)
}

/// Whether `file_name` is a file `open` set aside (for listing them).
pub fn is_set_aside(file_name: &str) -> bool {
    [CUT, UNREADABLE]
        .iter()
        .any(|kind| file_name.contains(&format!(".{kind}-")))
}

/// A name beside `path` for something of `kind` set aside now that no file
/// has yet (a second one in the same second gets `-1`, and so on).
fn aside_path(path: &Path, kind: &str) -> io::Result<PathBuf> {
    let secs = unix_secs();
    (0..100)
        .map(|n| match n {
            0 => path.with_extension(format!("{kind}-{secs}")),
            _ => path.with_extension(format!("{kind}-{secs}-{n}")),
        })
        .find(|to| !to.exists() && !unclaimed_name(to).exists())
        .ok_or_else(|| io::Error::other("a hundred files set aside in this second already"))
}

/// `file` with the unclaimed suffix.
fn unclaimed_name(file: &Path) -> PathBuf {
    PathBuf::from(format!("{}{UNCLAIMED}", file.display()))
}

/// Writes `tail`, cut from `path`, to a new file beside it (marked
/// unclaimed if asked) and syncs it; returns its path.
fn save_cut(path: &Path, tail: &[u8], unclaimed: bool) -> io::Result<PathBuf> {
    let to = aside_path(path, CUT)?;
    let to = if unclaimed { unclaimed_name(&to) } else { to };
    let mut f = OpenOptions::new().write(true).create_new(true).open(&to)?;
    f.write_all(tail)?;
    f.sync_all()?;
    sync_dir(path)?;
    Ok(to)
}

/// The new file of `path`'s `n`th rewrite.
fn rewrite_path(path: &Path, n: u64) -> PathBuf {
    path.with_extension(format!("rewrite-{n}"))
}

/// Removes the new files of `path`'s rewrites left behind (best effort:
/// they only take room).
fn remove_unfinished_rewrites(path: &Path) {
    let (Some(dir), Some(stem)) = (path.parent(), path.file_stem()) else {
        return;
    };
    let prefix = format!("{}.rewrite-", stem.to_string_lossy());
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name.strip_prefix(&prefix)
            && n.parse::<u64>().is_ok()
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Tests' stand-in for a full disk: appends to a file named here, or to
/// the files under a folder named here, fail as they would.
#[cfg(test)]
pub(crate) mod full_disk {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    static FULL: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    pub fn set(dir: &Path, full: bool) {
        let mut dirs = FULL.lock().unwrap_or_else(|e| e.into_inner());
        dirs.retain(|d| d != dir);
        if full {
            dirs.push(dir.to_path_buf());
        }
    }

    pub(super) fn is_full(path: &Path) -> bool {
        let dirs = FULL.lock().unwrap_or_else(|e| e.into_inner());
        dirs.iter().any(|d| path.starts_with(d))
    }
}

/// Tests' bad disk: flips a bit in the body of every intact record of the
/// file at `path` that `hit` picks (by its body); returns how many.
#[cfg(test)]
pub(crate) fn damage_records(path: &Path, hit: impl Fn(&[u8]) -> bool) -> usize {
    let mut bytes = std::fs::read(path).unwrap();
    let (mut at, mut hits) = (8, 0);
    while let Some(len) = record_at(&bytes, at).map(<[u8]>::len) {
        let body = at + 8;
        if hit(&bytes[body..body + len]) {
            bytes[body + 3] ^= 0x20;
            hits += 1;
        }
        at = body + len;
    }
    std::fs::write(path, &bytes).unwrap();
    hits
}

/// Makes a rename or creation in `path`'s directory durable.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: &[u8; 8] = b"PFTEST01";

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pf-record-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("file.log")
    }

    /// The files `open` saved cut bytes to, oldest first.
    fn cut_files(path: &Path) -> Vec<PathBuf> {
        let mut found: Vec<(std::time::SystemTime, PathBuf)> =
            std::fs::read_dir(path.parent().unwrap())
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("file.cut-"))
                .map(|e| (e.metadata().unwrap().modified().unwrap(), e.path()))
                .collect();
        found.sort();
        found.into_iter().map(|(_, p)| p).collect()
    }

    #[test]
    fn records_survive_reopening() {
        let path = temp("reopen");
        let mut opened = RecordFile::open(&path, MAGIC, PastDamage::Cut).unwrap();
        assert!(opened.records.is_empty() && opened.warning.is_none());
        opened.file.append([&b"one"[..], b"two"]).unwrap();
        opened.file.append([&b"3"[..]]).unwrap();
        opened.file.sync().unwrap();
        drop(opened);
        let again = RecordFile::open(&path, MAGIC, PastDamage::Cut).unwrap();
        assert_eq!(
            again.records,
            vec![b"one".to_vec(), b"two".to_vec(), b"3".to_vec()]
        );
        assert!(again.warning.is_none());
    }

    #[test]
    fn a_torn_or_flipped_tail_is_cut_with_a_warning() {
        let path = temp("torn");
        let mut opened = RecordFile::open(&path, MAGIC, PastDamage::Cut).unwrap();
        opened.file.append([&b"keep me"[..], b"and me"]).unwrap();
        let good_len = opened.file.len();
        opened.file.append([&b"torn record"[..]]).unwrap();
        drop(opened);
        // Tear the last record: half of it reached the disk.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        let again = RecordFile::open(&path, MAGIC, PastDamage::Cut).unwrap();
        assert_eq!(again.records.len(), 2);
        let warning = again.warning.clone().unwrap();
        assert!(warning.contains("cut a torn or corrupt tail"), "{warning}");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
        // The cut bytes are kept beside the file, named in the warning.
        let cut = cut_files(&path);
        assert_eq!(cut.len(), 1);
        assert!(warning.contains(&cut[0].display().to_string()), "{warning}");
        let torn = &bytes[good_len as usize..bytes.len() - 5];
        assert_eq!(std::fs::read(&cut[0]).unwrap(), torn);
        drop(again);
        // Flip a bit in the second record: it and everything after go.
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 2] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let mut again = RecordFile::open(&path, MAGIC, PastDamage::Cut).unwrap();
        assert_eq!(again.records, vec![b"keep me".to_vec()]);
        // A second cut gets a file of its own, even within the same second.
        assert_eq!(cut_files(&path).len(), 2);
        // Appending resumes on the clean edge.
        again.file.append([&b"after"[..]]).unwrap();
        drop(again);
        let last = RecordFile::open(&path, MAGIC, PastDamage::Cut).unwrap();
        assert_eq!(last.records, vec![b"keep me".to_vec(), b"after".to_vec()]);
        assert!(last.warning.is_none());
    }

    #[test]
    fn a_tail_of_zeros_is_cut_not_read_as_records() {
        // What a crash can leave on a file system that grew the file before
        // its data reached the disk.
        let path = temp("zeros");
        let mut opened = RecordFile::open(&path, MAGIC, PastDamage::Keep).unwrap();
        opened.file.append([&b"kept"[..]]).unwrap();
        let good_len = opened.file.len();
        drop(opened);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.resize(bytes.len() + 4096, 0);
        std::fs::write(&path, &bytes).unwrap();
        let again = RecordFile::open(&path, MAGIC, PastDamage::Keep).unwrap();
        assert_eq!(again.records, vec![b"kept".to_vec()]);
        assert!(
            again
                .warning
                .unwrap()
                .contains("cut a torn or corrupt tail of 4096 bytes")
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
    }

    /// `bodies` written as one file, and each record's (start, end) in it.
    fn write_records(path: &Path, bodies: &[Vec<u8>]) -> Vec<(usize, usize)> {
        let _ = std::fs::remove_file(path);
        let mut file = RecordFile::open(path, MAGIC, PastDamage::Cut).unwrap().file;
        bodies
            .iter()
            .map(|b| {
                let start = file.len() as usize;
                file.append([b.as_slice()]).unwrap();
                (start, file.len() as usize)
            })
            .collect()
    }

    #[test]
    fn unclaimed_cuts_come_oldest_first() {
        // Two cuts, most likely within one second (the second is named
        // `-1`, which sorts before the first as text).
        let path = temp("unclaimed-order");
        let mut firsts = Vec::new();
        for round in 0..2u8 {
            let bodies: Vec<Vec<u8>> = (0..4u8).map(|i| vec![round * 10 + i; 12]).collect();
            let mut opened = RecordFile::open(&path, MAGIC, PastDamage::Cut).unwrap();
            let start = opened.file.len() as usize;
            opened
                .file
                .append(bodies.iter().map(|b| b.as_slice()))
                .unwrap();
            drop(opened);
            // A flipped bit in the first new record: the three after it
            // are intact and cut with it.
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[start + 10] ^= 0x01;
            std::fs::write(&path, &bytes).unwrap();
            drop(RecordFile::open(&path, MAGIC, PastDamage::Cut).unwrap());
            firsts.push(bodies[1].clone());
        }
        let cuts = unclaimed_cuts(&path).unwrap();
        let got: Vec<Vec<u8>> = cuts.iter().map(|(_, records)| records[0].clone()).collect();
        assert_eq!(got, firsts);
    }

    #[test]
    fn records_past_damage_are_kept_when_asked() {
        let path = temp("past-damage");
        let bodies: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 10 + i as usize]).collect();
        let spans = write_records(&path, &bodies);
        let clean = std::fs::read(&path).unwrap();
        // A flipped bit in record 2's body, and 5 stray bytes written over
        // record 5's header.
        let mut bytes = clean.clone();
        bytes[spans[2].0 + 12] ^= 0x04;
        bytes[spans[5].0..spans[5].0 + 5].copy_from_slice(&[0xAB; 5]);
        std::fs::write(&path, &bytes).unwrap();

        let expect: Vec<Vec<u8>> = [0, 1, 3, 4, 6, 7]
            .iter()
            .map(|&i| bodies[i].clone())
            .collect();
        // Cut (the block log's way): everything from the damage on leaves
        // the file; the intact records among it wait in an unclaimed cut,
        // written before the file was cut, until the owner claims them.
        let cut = RecordFile::open(&path, MAGIC, PastDamage::Cut).unwrap();
        assert_eq!(cut.records, bodies[..2]);
        drop(cut);
        let unclaimed = unclaimed_cuts(&path).unwrap();
        assert_eq!(unclaimed.len(), 1);
        assert_eq!(unclaimed[0].1, expect[2..]);
        // Not claimed (a crash before the owner had them): still there at
        // the next open, which finds no new damage.
        let again = RecordFile::open(&path, MAGIC, PastDamage::Cut).unwrap();
        assert!(again.warning.is_none());
        drop(again);
        assert_eq!(unclaimed_cuts(&path).unwrap(), unclaimed);
        let claimed = claim_cut(&unclaimed[0].0).unwrap();
        assert!(unclaimed_cuts(&path).unwrap().is_empty());
        assert_eq!(std::fs::read(&claimed).unwrap(), bytes[spans[2].0..]);
        std::fs::write(&path, &bytes).unwrap();

        // Keep (the journal's way): the file is rewritten without the
        // damage; nothing is left unclaimed.
        let kept = RecordFile::open(&path, MAGIC, PastDamage::Keep).unwrap();
        assert_eq!(kept.records, expect);
        assert!(unclaimed_cuts(&path).unwrap().is_empty());
        let warning = kept.warning.clone().unwrap();
        let damaged = spans[2].1 - spans[2].0 + spans[5].1 - spans[5].0;
        assert!(
            warning.contains(&format!(
                "skipped {damaged} damaged bytes from offset {} and kept the 4 intact records after them (2 before)",
                spans[2].0
            )),
            "{warning}"
        );
        // The damaged bytes, and all after them, are saved as they were.
        let saved = cut_files(&path);
        assert_eq!(
            std::fs::read(saved.last().unwrap()).unwrap(),
            &bytes[spans[2].0..]
        );
        // The file now holds the intact records only, and appends go on.
        let mut file = kept.file;
        file.append([&b"next"[..]]).unwrap();
        drop(file);
        let again = RecordFile::open(&path, MAGIC, PastDamage::Keep).unwrap();
        assert!(again.warning.is_none(), "{:?}", again.warning);
        assert_eq!(again.records.len(), 7);
        assert_eq!(again.records[6], b"next");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        /// Whatever bytes a bad disk overwrites, every record it did not
        /// touch is read back, in order, and nothing else.
        #[test]
        fn every_untouched_record_survives_damage(
            sizes in proptest::collection::vec(1usize..60, 1..40),
            at in 0.0f64..1.0,
            garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..200),
        ) {
            let path = temp(&format!("prop-{}", sizes.len()));
            let bodies: Vec<Vec<u8>> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| (0..n).map(|k| (i * 31 + k * 7) as u8).collect())
                .collect();
            let spans = write_records(&path, &bodies);
            let original = std::fs::read(&path).unwrap();
            let mut bytes = original.clone();
            let start = 8 + ((bytes.len() - 8) as f64 * at) as usize;
            let end = (start + garbage.len()).min(bytes.len());
            bytes[start..end].copy_from_slice(&garbage[..end - start]);
            std::fs::write(&path, &bytes).unwrap();
            let clean = |&(s, e): &(usize, usize)| bytes[s..e] == original[s..e];
            let expect: Vec<Vec<u8>> = bodies
                .iter()
                .zip(&spans)
                .filter(|(_, span)| clean(span))
                .map(|(b, _)| b.clone())
                .collect();
            let opened = RecordFile::open(&path, MAGIC, PastDamage::Keep).unwrap();
            proptest::prop_assert_eq!(&opened.records, &expect);
            drop(opened);
            let again = RecordFile::open(&path, MAGIC, PastDamage::Keep).unwrap();
            proptest::prop_assert_eq!(&again.records, &expect);
            proptest::prop_assert!(again.warning.is_none());
        }
    }

    #[test]
    fn a_foreign_file_is_set_aside_not_deleted() {
        let path = temp("foreign");
        std::fs::write(&path, b"hello, not a journal").unwrap();
        let opened = RecordFile::open(&path, MAGIC, PastDamage::Cut).unwrap();
        assert!(opened.records.is_empty());
        assert!(opened.warning.unwrap().contains("moved it to"));
        let dir = path.parent().unwrap();
        let aside: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("unreadable"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(
            std::fs::read(aside[0].path()).unwrap(),
            b"hello, not a journal"
        );
    }

    #[test]
    fn a_rewrite_cut_short_by_a_crash_is_cleared_on_opening() {
        let path = temp("crashed-rewrite");
        let mut opened = RecordFile::open(&path, MAGIC, PastDamage::Cut).unwrap();
        opened.file.append([&b"kept"[..]]).unwrap();
        let mut rewrite = opened.file.begin_rewrite(MAGIC, [&b"new"[..]]);
        rewrite.write().unwrap();
        // The process dies here: no finish, no drop.
        std::mem::forget(rewrite);
        drop(opened);
        let dir = path.parent().unwrap();
        let other = dir.join("other.rewrite-1");
        std::fs::write(&other, b"not ours").unwrap();
        let left = |dir: &Path| {
            std::fs::read_dir(dir)
                .unwrap()
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("file.rewrite-"))
                .count()
        };
        assert_eq!(left(dir), 1);
        let again = RecordFile::open(&path, MAGIC, PastDamage::Cut).unwrap();
        assert_eq!(again.records, vec![b"kept".to_vec()]);
        assert_eq!(left(dir), 0);
        assert!(other.exists(), "another file's rewrite is not touched");
    }

    #[test]
    fn rewrite_keeps_only_what_it_is_given() {
        let path = temp("rewrite");
        let mut opened = RecordFile::open(&path, MAGIC, PastDamage::Cut).unwrap();
        opened.file.append([&b"a"[..], b"b", b"c"]).unwrap();
        opened.file.rewrite(MAGIC, [&b"c"[..]]).unwrap();
        opened.file.append([&b"d"[..]]).unwrap();
        drop(opened);
        let again = RecordFile::open(&path, MAGIC, PastDamage::Cut).unwrap();
        assert_eq!(again.records, vec![b"c".to_vec(), b"d".to_vec()]);
    }
}
