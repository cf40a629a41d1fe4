//! The JVM's heap use from its performance data file, for `HeapUsage`: Debian's JRE has
//! no `jcmd`/`jstat` and Berth runs no JMX client, but HotSpot keeps its counters in a
//! memory-mapped file, `<tmpdir>/hsperfdata_<user>/<pid>`, that root can read.
//!
//! Format (HotSpot `perfMemory.hpp`/`perfData.hpp`; the `sun.jvmstat` reader): a 32-byte
//! prologue — magic `0xcafec0c0` (always big-endian), byte order (0 big, 1 little),
//! major and minor version, accessible flag, `used`, `overflow` (i32), modification
//! time stamp (i64), `entry_offset`, `num_entries` (i32) — then `num_entries` entries,
//! each `entry_length`, `name_offset`, `vector_length` (i32), `data_type`, flags, units,
//! variability (u8), `data_offset` (i32), with a NUL-terminated name and the data at
//! their offsets from the entry's start. Only longs (`'J'`, scalar) and byte vectors
//! (`'B'`, strings) are read. Every offset and length is checked: a file being
//! rewritten, truncated or of another version is an error, never a panic.
//!
//! Heap use: used = Σ `sun.gc.generation.<g>.space.<s>.used`; max = Σ
//! `sun.gc.generation.<g>.maxCapacity`, except with G1 (`sun.gc.policy.name` =
//! `GarbageFirst`), whose young and old generations each report the whole heap as
//! their maximum, so the larger one is the heap's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The prologue's magic number.
pub const MAGIC: u32 = 0xcafe_c0c0;
const PROLOGUE: usize = 32;
const ENTRY_HEADER: usize = 20;

/// One counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PerfValue {
    Long(i64),
    Text(String),
}

/// The `N` bytes at `at`, if the data has them.
fn bytes_at<const N: usize>(data: &[u8], at: usize) -> Result<[u8; N], String> {
    data.get(at..at.saturating_add(N))
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| format!("no {N} bytes at {at}"))
}

/// Every long and string counter of a performance data file.
pub fn parse(data: &[u8]) -> Result<BTreeMap<String, PerfValue>, String> {
    if data.len() < PROLOGUE {
        return Err("shorter than the prologue".into());
    }
    let magic = u32::from_be_bytes(data[0..4].try_into().map_err(|_| "prologue")?);
    if magic != MAGIC {
        return Err(format!("bad magic {magic:#x}"));
    }
    let little = match data[4] {
        0 => false,
        1 => true,
        other => return Err(format!("bad byte order {other}")),
    };
    let i32_at = |at: usize| -> Result<i32, String> {
        let b = bytes_at::<4>(data, at)?;
        Ok(if little {
            i32::from_le_bytes(b)
        } else {
            i32::from_be_bytes(b)
        })
    };
    let i64_at = |at: usize| -> Result<i64, String> {
        let b = bytes_at::<8>(data, at)?;
        Ok(if little {
            i64::from_le_bytes(b)
        } else {
            i64::from_be_bytes(b)
        })
    };
    let offset = |v: i32| usize::try_from(v).map_err(|_| format!("negative offset {v}"));
    let mut at = offset(i32_at(24)?)?;
    let count = offset(i32_at(28)?)?;
    let mut out = BTreeMap::new();
    for _ in 0..count {
        let length = offset(i32_at(at)?)?;
        if length < ENTRY_HEADER || at + length > data.len() {
            return Err(format!("bad entry length {length} at {at}"));
        }
        let entry = &data[at..at + length];
        let name_off = offset(i32_at(at + 4)?)?;
        let vector = offset(i32_at(at + 8)?)?;
        let kind = entry[12];
        let data_off = offset(i32_at(at + 16)?)?;
        let name_bytes = entry.get(name_off..).ok_or("name outside its entry")?;
        let name_end = name_bytes
            .iter()
            .position(|&b| b == 0)
            .ok_or("name without its NUL")?;
        let name = String::from_utf8_lossy(&name_bytes[..name_end]).into_owned();
        let value = match (kind, vector) {
            (b'J', 0) => {
                if data_off + 8 > length {
                    return Err(format!("{name}: value outside its entry"));
                }
                Some(PerfValue::Long(i64_at(at + data_off)?))
            }
            (b'B', n) if n > 0 => {
                let bytes = entry
                    .get(data_off..data_off + n)
                    .ok_or_else(|| format!("{name}: string outside its entry"))?;
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                Some(PerfValue::Text(
                    String::from_utf8_lossy(&bytes[..end]).into_owned(),
                ))
            }
            _ => None,
        };
        if let Some(v) = value {
            out.insert(name, v);
        }
        at += length;
    }
    Ok(out)
}

/// Heap used and maximum (bytes) from parsed counters; see the module docs.
pub fn heap(counters: &BTreeMap<String, PerfValue>) -> Option<(u64, u64)> {
    let long = |v: &PerfValue| match v {
        PerfValue::Long(n) => u64::try_from(*n).ok(),
        PerfValue::Text(_) => None,
    };
    let mut used = 0u64;
    let mut maxes = Vec::new();
    for (name, v) in counters {
        let Some(rest) = name.strip_prefix("sun.gc.generation.") else {
            continue;
        };
        let Some(n) = long(v) else { continue };
        let mut parts = rest.split('.');
        let _generation = parts.next();
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("maxCapacity"), None, None, None) => maxes.push(n),
            (Some("space"), Some(_), Some("used"), None) => used = used.saturating_add(n),
            _ => {}
        }
    }
    let g1 = matches!(counters.get("sun.gc.policy.name"), Some(PerfValue::Text(p)) if p.contains("GarbageFirst"));
    let max = if g1 {
        maxes.iter().copied().max()?
    } else {
        maxes.iter().sum()
    };
    (max > 0).then_some((used, max))
}

/// The performance data file of the live JVM among `dir`'s (`<pid>` files; the newest
/// of those whose process still exists).
pub fn find_file(dir: &Path, proc_root: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_digit())
                && proc_root.join(&*name).exists()
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

/// Heap use in percent of the maximum, from the JVM's file in `dir`.
pub fn heap_percent(dir: &Path, proc_root: &Path) -> Result<f64, String> {
    let file = find_file(dir, proc_root).ok_or_else(|| {
        format!(
            "no performance data file of a live JVM in {}",
            dir.display()
        )
    })?;
    let data = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let counters = parse(&data)?;
    let (used, max) = heap(&counters).ok_or("no heap counters")?;
    Ok((used as f64 / max as f64 * 100.0).clamp(0.0, 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from a running Berth ActiveMQ container (`berth/activemq:5.17`, OpenJDK 21,
    /// `-Xmx512m`, 1 CPU: Serial GC), 40 s after start.
    const FIXTURE: &[u8] = include_bytes!("../../testdata/hsperfdata_activemq");

    #[test]
    fn reads_a_real_jvm_file() {
        let counters = parse(FIXTURE).unwrap();
        assert!(counters.len() > 100, "{}", counters.len());
        assert!(
            matches!(counters.get("java.property.java.vm.name"), Some(PerfValue::Text(t)) if t.contains("OpenJDK"))
        );
        let (used, max) = heap(&counters).unwrap();
        assert!(used > 0 && used < max, "{used} of {max}");
        // -Xmx512m
        assert_eq!(max, 512 << 20);
    }

    /// A file in the documented layout, for the error paths.
    fn synthetic(little: bool, entries: &[(&str, u8, &[u8])]) -> Vec<u8> {
        let i32b = |v: i32| {
            if little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        let mut body = Vec::new();
        for (name, kind, data) in entries {
            let name_off = ENTRY_HEADER;
            let data_off = (name_off + name.len() + 1).next_multiple_of(8);
            let length = (data_off + data.len()).next_multiple_of(8);
            let mut e = vec![0u8; length];
            e[0..4].copy_from_slice(&i32b(length as i32));
            e[4..8].copy_from_slice(&i32b(name_off as i32));
            let vector = if *kind == b'B' { data.len() as i32 } else { 0 };
            e[8..12].copy_from_slice(&i32b(vector));
            e[12] = *kind;
            e[16..20].copy_from_slice(&i32b(data_off as i32));
            e[name_off..name_off + name.len()].copy_from_slice(name.as_bytes());
            e[data_off..data_off + data.len()].copy_from_slice(data);
            body.extend(e);
        }
        let mut out = vec![0u8; PROLOGUE];
        out[0..4].copy_from_slice(&MAGIC.to_be_bytes());
        out[4] = u8::from(little);
        out[5] = 2;
        out[24..28].copy_from_slice(&i32b(PROLOGUE as i32));
        out[28..32].copy_from_slice(&i32b(entries.len() as i32));
        out.extend(body);
        out
    }

    #[test]
    fn both_byte_orders_and_g1() {
        for little in [false, true] {
            let long = |v: i64| {
                if little {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                }
            };
            let (a, b, c, d) = (long(100), long(50), long(1000), long(1000));
            let file = synthetic(
                little,
                &[
                    ("sun.gc.policy.name", b'B', b"GarbageFirst\0\0\0"),
                    ("sun.gc.generation.0.space.0.used", b'J', &a),
                    ("sun.gc.generation.1.space.0.used", b'J', &b),
                    ("sun.gc.generation.0.maxCapacity", b'J', &c),
                    ("sun.gc.generation.1.maxCapacity", b'J', &d),
                ],
            );
            let counters = parse(&file).unwrap();
            assert_eq!(heap(&counters), Some((150, 1000)), "little={little}");
        }
        // serial: the generations' maxima add up
        let l = |v: i64| v.to_le_bytes();
        let file = synthetic(
            true,
            &[
                ("sun.gc.policy.name", b'B', b"Copy:MSC\0"),
                ("sun.gc.generation.0.space.0.used", b'J', &l(10)),
                ("sun.gc.generation.0.maxCapacity", b'J', &l(300)),
                ("sun.gc.generation.1.maxCapacity", b'J', &l(700)),
            ],
        );
        assert_eq!(heap(&parse(&file).unwrap()), Some((10, 1000)));
    }

    #[test]
    fn damaged_files_are_errors() {
        let l = |v: i64| v.to_le_bytes();
        let good = synthetic(true, &[("sun.gc.generation.0.maxCapacity", b'J', &l(1))]);
        assert!(parse(&good).is_ok());
        assert!(parse(&good[..20]).is_err());
        assert!(parse(&good[..good.len() - 4]).is_err());
        let mut bad_magic = good.clone();
        bad_magic[0] = 0;
        assert!(parse(&bad_magic).is_err());
        let mut bad_order = good.clone();
        bad_order[4] = 7;
        assert!(parse(&bad_order).is_err());
        let mut bad_len = good.clone();
        bad_len[PROLOGUE..PROLOGUE + 4].copy_from_slice(&(-5i32).to_le_bytes());
        assert!(parse(&bad_len).is_err());
        let mut bad_count = good.clone();
        bad_count[28..32].copy_from_slice(&1000i32.to_le_bytes());
        assert!(parse(&bad_count).is_err());
        // FIXTURE cut anywhere: an error or fewer counters, never a panic
        for cut in (0..FIXTURE.len()).step_by(997) {
            let _ = parse(&FIXTURE[..cut]);
        }
        assert_eq!(heap(&BTreeMap::new()), None);
    }

    #[test]
    fn finds_the_live_jvm_file() {
        let dir = tempfile::tempdir().unwrap();
        let proc_root = dir.path().join("proc");
        std::fs::create_dir_all(proc_root.join("42")).unwrap();
        let perf = dir.path().join("hsperfdata_activemq");
        std::fs::create_dir(&perf).unwrap();
        std::fs::write(perf.join("7"), FIXTURE).unwrap(); // a dead JVM's
        std::fs::write(perf.join("42"), FIXTURE).unwrap();
        std::fs::write(perf.join("notapid"), b"x").unwrap();
        assert_eq!(find_file(&perf, &proc_root), Some(perf.join("42")));
        let pct = heap_percent(&perf, &proc_root).unwrap();
        assert!(pct > 0.0 && pct < 100.0, "{pct}");
        assert!(heap_percent(&dir.path().join("none"), &proc_root).is_err());
    }
}
