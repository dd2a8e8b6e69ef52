//! A simulated fleet behind `GET /data/deviceProfiles`. Every device the tenant knows (an updatable
//! asset, or a member of an audience or group) runs one Windows build from the catalog's products at
//! an older revision. While a deployment offers it an update (not paused, the device a member and not
//! excluded) the device accumulates exposure; after its own delay (seeded from the device id, around
//! `install_hours` of simulated time) it either installs the entry's revision for its build (the
//! hotpatch revision, for a share of devices, where the entry has one), or fails (a registration error
//! on its asset), or never reports at all (absent from `deviceProfiles`). Pausing stops exposure, so no
//! new installs. `time_scale` makes simulated time pass faster than real time. Everything is
//! deterministic from the seed and the device ids; the admin API can set a device's build or error.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::odata::NS;
use crate::store::{AssetKind, Store};

/// How the simulated fleet behaves.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct FleetConfig {
    /// Simulated seconds per real second (3600: an hour passes every second).
    pub time_scale: f64,
    /// Mean simulated hours from first being offered to the outcome (delays spread from 0.2x to 1.8x).
    pub install_hours: f64,
    /// Share of installing devices that take the hotpatch revision where the entry has one.
    pub hotpatch_rate: f64,
    /// Share of devices that fail (a registration error appears on the asset).
    pub failure_rate: f64,
    /// Share of devices that never report to `deviceProfiles`.
    pub silent_rate: f64,
    pub seed: u64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            time_scale: 1.0,
            install_hours: 4.0,
            hotpatch_rate: 0.3,
            failure_rate: 0.0,
            silent_rate: 0.0,
            seed: 1,
        }
    }
}

/// A Windows build, as the catalog's `osBuild` has it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Build {
    pub major_version: u32,
    pub minor_version: u32,
    pub build_number: u32,
    pub update_build_revision: u32,
}

impl Build {
    /// `10.0.26100.2605`: the string form `deviceProfile.osBuild` has.
    pub fn text(&self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.major_version, self.minor_version, self.build_number, self.update_build_revision
        )
    }

    fn of(revision: &Value) -> Option<Build> {
        serde_json::from_value(revision.get("osBuild")?.clone()).ok()
    }
}

/// What a device will do when its delay has passed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    Install,
    InstallHotpatch,
    Fail,
    Silent,
}

/// One device of the fleet, with its truth (for tests: what progress must count).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub build: Build,
    /// The Windows version name of the build (`24H2`).
    pub version: String,
    pub outcome: Outcome,
    /// Simulated seconds of exposure the outcome needs.
    pub delay_secs: f64,
    /// Simulated seconds offered so far.
    pub exposure_secs: f64,
    /// The catalog entry installed, once installed.
    pub installed_entry: Option<String>,
    /// The registration error reason, once failed (or set through the admin API).
    pub error: Option<String>,
    /// Reports to `deviceProfiles` (silent devices never do).
    pub reporting: bool,
}

/// The fleet's state.
///
/// Devices live in one vector (`states`), found by id through `index`; what a deployment offers is a
/// list of slots, so moving time on touches each offered device once without a lookup by id.
#[derive(Debug, Default)]
pub struct Fleet {
    pub config: FleetConfig,
    /// Each slot's device id (lower case), in the order the fleet first saw them, which is the order
    /// `deviceProfiles` lists them in (a device seen later joins the end: paging through the list
    /// while devices join neither skips nor repeats one).
    ids: Vec<Arc<str>>,
    /// Each device's slot, by id (the same string as in `ids`): finding a device among a hundred
    /// thousand is one hashed lookup.
    index: std::collections::HashMap<Arc<str>, usize>,
    states: Vec<Device>,
    last_tick_ms: Option<u64>,
    /// Simulated time runs from the first read of the fleet (`deviceProfiles`, or the admin API), so a
    /// tenant nobody asks about devices costs nothing per request.
    pub active: bool,
    /// The tenant's revision when `offered` was worked out, and the offered devices of each unpaused
    /// deployment with its entry: recomputed only when assets, audiences or deployments change.
    revision: Option<u64>,
    /// By deployment id: each worked out again only when its own audience changed, so a write to one
    /// deployment of a thousand does not walk the other 999 audiences.
    offered: BTreeMap<String, Offered>,
    /// Whether every device the tenant knew has been given its place once (on the first read of the
    /// fleet); after that, a read takes only the devices the tenant registered since
    /// ([`Store::take_registered`]), so it never walks the whole tenant again.
    known: bool,
    /// Simulated seconds held back since time was last put on every offered device (a walk, or a
    /// change through the admin API): while no device could reach its delay within
    /// them (`quiet_for`), a tick adds its time here instead of walking every offered device. Each
    /// offering gets the part of it since it began (`Offered::held_from`): when the offering ends,
    /// on its own devices; at the next walk, on every offered device, as often as it is offered.
    pending_secs: f64,
    /// How much exposure can be held back (counted like `pending_secs`): after a walk, the least
    /// exposure any waiting device needs to reach its delay, shared among the offerings of the device
    /// offered most often. Zero forces a walk (a device was set through the admin API). When what is
    /// offered changes, it is narrowed for the newly offered devices rather than reset, so a rollout
    /// that adds a deployment at a time does not walk every offered device at each addition.
    quiet_for: f64,
    /// By slot, how many unpaused deployments offer the device (installed and failed devices too).
    offers: Vec<u32>,
    /// The failures on offered devices, by slot (the last walk's, and those of devices offered since):
    /// put on their assets at every tick, as a walk does (an asset may appear after its device failed).
    failing: BTreeMap<usize, String>,
    /// Walks every tick (the reference the tests hold held-back time to).
    #[cfg(test)]
    always_walk: bool,
    /// Walks made.
    #[cfg(test)]
    walks: usize,
}

/// What one unpaused deployment offers: its entry and devices (their slots), and the audience's print
/// (its id, list sizes and the sizes of the groups it names) when they were worked out.
#[derive(Debug)]
struct Offered {
    print: (String, usize, usize, usize),
    entry: String,
    /// Each device's slot (its id is `Fleet::ids[slot]`).
    devices: Vec<usize>,
    /// `Fleet::pending_secs` when this offering's time began to be held back: the time held back for
    /// it is what has been held back since.
    held_from: f64,
}

/// Puts each failure (by slot, the device's id in `ids`) on its device's asset, once.
fn put_errors(store: &mut Store, ids: &[Arc<str>], failed: &BTreeMap<usize, String>) {
    for (slot, error) in failed {
        let id = &*ids[*slot];
        let asset = match store.assets.contains_key(id) {
            true => store.assets.get_mut(id),
            false => store.assets.values_mut().find(|a| a.id.eq_ignore_ascii_case(id)),
        };
        if let Some(a) = asset
            && !a.errors.contains(error)
        {
            a.errors.push(error.clone());
        }
    }
}

/// An audience's print: what its offered devices depend on.
fn print_of(store: &Store, audience_id: &str) -> (String, usize, usize, usize) {
    let Some(a) = store.audiences.get(audience_id) else {
        return (audience_id.to_string(), 0, 0, 0);
    };
    let groups: usize = a
        .members
        .iter()
        .chain(&a.exclusions)
        .filter(|(_, kind)| **kind == AssetKind::Group)
        .map(|(id, _)| store.assets.get(id).map_or(0, |g| g.members.len() + 1))
        .sum();
    (
        audience_id.to_string(),
        a.members.len(),
        a.exclusions.len(),
        groups,
    )
}

fn unit(seed: u64, id: &str, salt: u64) -> f64 {
    // FNV-1a over the id, mixed with the seed and a salt, then one splitmix64 round.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The products a device may run, with the revision it starts at: older than every catalog entry.
fn starting_builds() -> Vec<(Build, &'static str)> {
    crate::catalog::product_builds()
        .into_iter()
        .map(|(major, build, base_ubr, version)| {
            (
                Build {
                    major_version: major,
                    minor_version: 0,
                    build_number: build,
                    update_build_revision: base_ubr.saturating_sub(100),
                },
                version,
            )
        })
        .collect()
}

impl Fleet {
    pub fn new(config: FleetConfig) -> Self {
        Fleet {
            config,
            ..Default::default()
        }
    }

    /// Every device, by id (their truth, for tests).
    pub fn devices(&self) -> BTreeMap<String, Device> {
        self.ids
            .iter()
            .zip(&self.states)
            .map(|(id, d)| (id.to_string(), d.clone()))
            .collect()
    }

    fn device(&mut self, id: &str) -> &mut Device {
        let slot = self.ensure(id);
        &mut self.states[slot]
    }

    /// The device's slot, giving it one (and allocating) only when the fleet does not have it yet.
    fn ensure(&mut self, id: &str) -> usize {
        if let Some(slot) = self.index.get(id) {
            return *slot;
        }
        let slot = self.states.len();
        self.states.push(Self::new_device(&self.config, id));
        self.offers.push(0);
        let id: Arc<str> = Arc::from(id);
        self.ids.push(Arc::clone(&id));
        self.index.insert(id, slot);
        slot
    }

    /// [`Fleet::ensure`] for an id in any case (the fleet keeps ids lower case).
    fn ensure_any_case(&mut self, id: &str) -> usize {
        if id.bytes().any(|b| b.is_ascii_uppercase()) {
            self.ensure(&id.to_lowercase())
        } else {
            self.ensure(id)
        }
    }

    fn new_device(c: &FleetConfig, id: &str) -> Device {
        static BUILDS: std::sync::LazyLock<Vec<(Build, &'static str)>> =
            std::sync::LazyLock::new(starting_builds);
        let builds = &*BUILDS;
        let (build, version) = builds[(unit(c.seed, id, 1) * builds.len() as f64) as usize % builds.len()];
        let u = unit(c.seed, id, 2);
        let outcome = if u < c.silent_rate {
            Outcome::Silent
        } else if u < c.silent_rate + c.failure_rate {
            Outcome::Fail
        } else if unit(c.seed, id, 3) < c.hotpatch_rate {
            Outcome::InstallHotpatch
        } else {
            Outcome::Install
        };
        Device {
            build,
            version: version.to_string(),
            outcome,
            delay_secs: c.install_hours * 3600.0 * (0.2 + 1.6 * unit(c.seed, id, 4)),
            exposure_secs: 0.0,
            installed_entry: None,
            error: None,
            reporting: outcome != Outcome::Silent,
        }
    }

    /// Before a read of the fleet: every device the tenant knows has its place. The first read walks
    /// the tenant; later ones take the devices registered since.
    pub fn know(&mut self, store: &mut Store) {
        let registered = store.take_registered();
        if !self.known {
            self.known = true;
            self.know_all(store);
        }
        for id in &registered {
            self.ensure_any_case(id);
        }
    }

    /// Gives every device the tenant knows its place: device assets, and devices in audiences and
    /// groups (ids as the fleet keeps them, lowercase; one lookup each, an allocation only for a new one).
    fn know_all(&mut self, store: &Store) {
        let devices = store
            .assets
            .values()
            .filter(|a| a.kind == AssetKind::Device)
            .map(|a| a.id.as_str());
        let in_audiences = store.audiences.values().flat_map(|a| {
            a.members
                .iter()
                .chain(&a.exclusions)
                .filter(|(_, kind)| **kind == AssetKind::Device)
                .map(|(id, _)| id.as_str())
        });
        let in_groups = store
            .assets
            .values()
            .filter(|a| a.kind == AssetKind::Group)
            .flat_map(|a| a.members.iter().map(String::as_str));
        for id in devices.chain(in_audiences).chain(in_groups) {
            self.ensure_any_case(id);
        }
    }

    /// Whether the fleet is idle (never read) or the last tick was less than `ms` before `now_ms`.
    pub fn ticked_within(&self, now_ms: u64, ms: u64) -> bool {
        !self.active || self.last_tick_ms.is_some_and(|t| now_ms.saturating_sub(t) < ms)
    }

    /// Moves simulated time on to `now_ms`: offered devices gain exposure, and those past their delay
    /// install, fail (the error is put on their asset) or stay silent. `reading`: the fleet itself is
    /// about to be read, so every device the tenant knows gets its place (not only the offered ones).
    pub fn tick(&mut self, store: &mut Store, catalog: &[Value], now_ms: u64, reading: bool) {
        if !self.active {
            return;
        }
        let last = self.last_tick_ms.replace(now_ms).unwrap_or(now_ms);
        let dt = now_ms.saturating_sub(last) as f64 / 1000.0 * self.config.time_scale;
        if reading {
            self.know(store);
        }
        if self.revision != Some(store.revision) {
            // Time held back was offered by the deployments as they were: an offering that ends puts
            // its part on its devices, one that begins counts from now.
            self.revision = Some(store.revision);
            let mut offered = std::mem::take(&mut self.offered);
            let live: BTreeMap<&str, (&str, &str)> = store
                .deployments
                .values()
                .filter(|d| d.requested != "paused")
                .filter_map(|d| {
                    let entry = d.content.pointer("/catalogEntry/id").and_then(Value::as_str)?;
                    Some((d.id.as_str(), (entry, d.audience_id.as_str())))
                })
                .collect();
            let gone: Vec<String> = offered
                .keys()
                .filter(|id| !live.contains_key(id.as_str()))
                .cloned()
                .collect();
            for id in gone {
                if let Some(o) = offered.remove(&id) {
                    self.withdraw(&o);
                }
            }
            let mut newly: Vec<usize> = Vec::new();
            for (id, (entry, audience_id)) in live {
                let print = print_of(store, audience_id);
                if offered
                    .get(id)
                    .is_some_and(|o| o.print == print && o.entry == entry)
                {
                    continue;
                }
                if let Some(old) = offered.remove(id) {
                    self.withdraw(&old);
                }
                let devices: Vec<usize> = store
                    .offered_devices(audience_id)
                    .iter()
                    .map(|d| self.ensure(d))
                    .collect();
                // A walk shows the failures of an offering whose entry the catalog lists.
                let listed = catalog.iter().any(|e| e["id"] == entry);
                for &slot in &devices {
                    self.offers[slot] += 1;
                    newly.push(slot);
                    if let Some(e) = self.states[slot].error.as_ref().filter(|_| listed) {
                        self.failing.insert(slot, e.clone());
                    }
                }
                offered.insert(
                    id.to_string(),
                    Offered {
                        print,
                        entry: entry.to_string(),
                        devices,
                        held_from: self.pending_secs,
                    },
                );
            }
            self.offered = offered;
            self.narrow_quiet(&newly);
        }
        if dt <= 0.0 {
            return;
        }
        #[cfg(test)]
        let quiet = !self.always_walk && self.pending_secs + dt < self.quiet_for;
        #[cfg(not(test))]
        let quiet = self.pending_secs + dt < self.quiet_for;
        if quiet {
            // No waiting device can reach its delay within this time: held back, not walked.
            self.pending_secs += dt;
            put_errors(store, &self.ids, &self.failing);
            return;
        }
        // Time held back reaches every waiting device as often as it is offered, before this tick's.
        self.add_held();
        #[cfg(test)]
        {
            self.walks += 1;
        }
        let mut failed = BTreeMap::new();
        let mut times_offered = vec![0u32; self.states.len()];
        let offered = std::mem::take(&mut self.offered);
        for Offered {
            entry: entry_id,
            devices,
            ..
        } in offered.values()
        {
            let Some(entry) = catalog.iter().find(|e| e["id"] == entry_id.as_str()) else {
                continue;
            };
            let revisions = entry["productRevisions"].as_array().cloned().unwrap_or_default();
            for slot in devices {
                let dev = &mut self.states[*slot];
                if let Some(e) = &dev.error {
                    // An error set through the admin API before the device's asset existed shows on
                    // the asset once it does.
                    failed.insert(*slot, e.clone());
                    continue;
                }
                if dev.installed_entry.is_some() {
                    continue;
                }
                times_offered[*slot] += 1;
                dev.exposure_secs += dt;
                if dev.exposure_secs < dev.delay_secs {
                    continue;
                }
                let hotpatch = dev.outcome == Outcome::InstallHotpatch;
                match dev.outcome {
                    Outcome::Fail => {
                        dev.error = Some("invalidAzureADJoin".into());
                        failed.insert(*slot, "invalidAzureADJoin".to_string());
                    }
                    Outcome::Silent | Outcome::Install | Outcome::InstallHotpatch => {
                        let of_build: Vec<(Build, bool)> = revisions
                            .iter()
                            .filter_map(|r| Some((Build::of(r)?, r["isHotpatchUpdate"] == true)))
                            .filter(|(b, _)| b.build_number == dev.build.build_number)
                            .collect();
                        let pick = of_build
                            .iter()
                            .find(|(_, h)| *h == hotpatch)
                            .or_else(|| of_build.iter().find(|(_, h)| !h));
                        if let Some((b, _)) = pick {
                            dev.build = *b;
                        }
                        dev.installed_entry = Some(entry_id.to_string());
                    }
                }
            }
        }
        self.offered = offered;
        // What the next ticks may hold back: the least a waiting device needs, shared among the
        // offerings of the device offered most often (each adds the tick's time to it).
        let most = times_offered.iter().copied().max().unwrap_or(0).max(1);
        let need = times_offered
            .iter()
            .zip(&self.states)
            .filter(|(n, d)| **n > 0 && d.error.is_none() && d.installed_entry.is_none())
            .map(|(_, d)| d.delay_secs - d.exposure_secs)
            .fold(f64::INFINITY, f64::min);
        self.quiet_for = if need.is_finite() {
            need / f64::from(most)
        } else {
            f64::INFINITY
        };
        put_errors(store, &self.ids, &failed);
        self.failing = failed;
    }

    /// A deployment no longer makes offering `o` (paused, deleted, or its audience or entry changed):
    /// the time held back for it goes to its waiting devices, each is offered once less, and a device
    /// no deployment offers has no failure to show.
    fn withdraw(&mut self, o: &Offered) {
        let held = self.pending_secs - o.held_from;
        for slot in &o.devices {
            let dev = &mut self.states[*slot];
            if held > 0.0 && dev.error.is_none() && dev.installed_entry.is_none() {
                dev.exposure_secs += held;
            }
            self.offers[*slot] = self.offers[*slot].saturating_sub(1);
            if self.offers[*slot] == 0 {
                self.failing.remove(slot);
            }
        }
    }

    /// What may be held back once `newly` offered devices (slots, with repeats) joined the offered
    /// ones. The devices whose offerings did not grow stay within `quiet_for`. A newly offered device
    /// `d`, offered `k` times now, had at most `k - 1` offerings holding back up to `pending_secs`
    /// each; from here each tick adds its time `k` times, so it stays short of its delay while the
    /// time held back is below `pending + (delay - exposure - (k - 1) * pending) / k`. Withdrawn
    /// offerings only add slack (the bound stays safe; the next walk makes it exact).
    fn narrow_quiet(&mut self, newly: &[usize]) {
        let held = self.pending_secs;
        let bound = newly
            .iter()
            .filter_map(|&s| {
                let d = &self.states[s];
                let k = f64::from(self.offers[s].max(1));
                (d.error.is_none() && d.installed_entry.is_none())
                    .then(|| held + (d.delay_secs - d.exposure_secs - (k - 1.0) * held) / k)
            })
            .fold(f64::INFINITY, f64::min);
        self.quiet_for = self.quiet_for.min(bound).max(0.0);
    }

    /// Adds the time held back to every waiting offered device, each offering its part (no device
    /// reaches its delay within it: that is why it was held back).
    fn add_held(&mut self) {
        let held = std::mem::take(&mut self.pending_secs);
        if held <= 0.0 {
            return;
        }
        // What may still be held back shrinks by what was.
        self.quiet_for = (self.quiet_for - held).max(0.0);
        for o in self.offered.values_mut() {
            let part = held - std::mem::take(&mut o.held_from);
            if part <= 0.0 {
                continue;
            }
            for slot in &o.devices {
                let dev = &mut self.states[*slot];
                if dev.error.is_none() && dev.installed_entry.is_none() {
                    dev.exposure_secs += part;
                }
            }
        }
    }

    /// The devices that report, by id: what `deviceProfiles` lists (rendered a page at a time).
    pub fn reporting(&self) -> impl Iterator<Item = (&str, &Device)> {
        self.ids
            .iter()
            .map(|id| &**id)
            .zip(&self.states)
            .filter(|(_, d)| d.reporting)
    }

    /// The `deviceProfile` resource of one device.
    pub fn profile(id: &str, d: &Device) -> Value {
        json!({
            "@odata.type": format!("#{NS}deviceProfile"),
            "id": id,
            "azureAdDeviceId": id,
            "deviceName": format!("PC-{}", &id[..id.len().min(8)].to_uppercase()),
            "deviceModel": "Surface Laptop 6",
            "osBuild": d.build.text(),
            "osVersion": d.version,
            "osStatus": "inServicing",
            "hotpatchReadiness": if d.outcome == Outcome::InstallHotpatch { "ready" } else { "notReady" },
        })
    }

    /// The `deviceProfile` resource of one device that reports (the id in any case).
    pub fn profile_of(&self, id: &str) -> Option<Value> {
        let slot = *self.index.get(id.to_lowercase().as_str())?;
        let d = &self.states[slot];
        d.reporting.then(|| Self::profile(&self.ids[slot], d))
    }

    /// Sets a device's build and error directly (admin API); a set build marks it as reporting.
    pub fn set(&mut self, store: &mut Store, id: &str, build: Option<Build>, error: Option<Option<String>>) {
        let id = id.to_lowercase();
        // Time held back was offered to the device as it was; the next tick walks the offered devices.
        self.add_held();
        self.quiet_for = 0.0;
        let dev = self.device(&id);
        if let Some(b) = build {
            dev.build = b;
            dev.reporting = true;
        }
        if let Some(e) = error {
            dev.error = e.clone();
            if let Some(a) = store.assets.values_mut().find(|a| a.id.eq_ignore_ascii_case(&id)) {
                a.errors = e.into_iter().collect();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_rates_and_replay_from_the_seed() {
        let config = FleetConfig {
            failure_rate: 0.1,
            silent_rate: 0.05,
            hotpatch_rate: 0.3,
            seed: 7,
            ..Default::default()
        };
        let mut a = Fleet::new(config.clone());
        let mut b = Fleet::new(config);
        let mut counts = BTreeMap::new();
        for i in 0..4000 {
            let id = format!("00000000-0000-4000-8000-{i:012}");
            let da = a.device(&id).clone();
            assert_eq!(&da, b.device(&id), "the same seed, the same device");
            *counts.entry(format!("{:?}", da.outcome)).or_insert(0) += 1;
        }
        let share = |k: &str| f64::from(counts[k]) / 4000.0;
        assert!((share("Silent") - 0.05).abs() < 0.02, "{counts:?}");
        assert!((share("Fail") - 0.1).abs() < 0.02, "{counts:?}");
        assert!((share("InstallHotpatch") - 0.3 * 0.85).abs() < 0.04, "{counts:?}");
    }

    fn id(i: usize) -> String {
        format!("00000000-0000-4000-8000-{i:012}")
    }

    /// Two active fleets of one configuration: one that holds time back, one that walks every offered
    /// device at every tick (the reference).
    fn quick_and_walking(config: FleetConfig) -> (Fleet, Fleet) {
        let mut quick = Fleet::new(config.clone());
        let mut walking = Fleet::new(config);
        walking.always_walk = true;
        quick.active = true;
        walking.active = true;
        (quick, walking)
    }

    /// Each device's installed entry and error (exposure held back is not on the devices yet: what it
    /// leads to is).
    fn outcomes(f: &Fleet) -> Vec<(String, Option<String>, Option<String>)> {
        f.devices()
            .into_iter()
            .map(|(id, d)| (id, d.installed_entry, d.error))
            .collect()
    }

    /// An unpaused deployment `d` (catalog entry `e-<d>`) offering the devices `range`, registered.
    fn offer(store: &mut Store, d: &str, range: std::ops::Range<usize>) {
        let aid = format!("a-{d}");
        let mut audience = crate::store::Audience {
            id: aid.clone(),
            ..Default::default()
        };
        for i in range {
            audience.members.insert(id(i), AssetKind::Device);
            store.register_device(&id(i), &BTreeMap::new());
        }
        store.audiences.insert(aid.clone(), audience);
        let at = chrono::Utc::now();
        store.deployments.insert(
            d.to_string(),
            crate::store::Deployment {
                id: d.to_string(),
                content: json!({"catalogEntry": {"id": format!("e-{d}")}}),
                settings: json!({}),
                requested: "none".into(),
                created: at,
                modified: at,
                effective_since: at,
                audience_id: aid,
                intune_managed: false,
            },
        );
        store.touch();
    }

    /// A rollout adds its deployments one at a time: each addition narrows what may be held back for
    /// its own devices instead of walking every device offered already, and the devices install and
    /// fail at the same ticks as walking every offered device at every tick.
    #[test]
    fn deployments_added_while_time_is_held_back_do_not_walk_the_offered_devices() {
        let config = FleetConfig {
            install_hours: 1.0,
            failure_rate: 0.2,
            seed: 5,
            ..Default::default()
        };
        let mut stores = (Store::new(1), Store::new(1));
        offer(&mut stores.0, "d0", 0..50);
        offer(&mut stores.1, "d0", 0..50);
        let catalog: Vec<Value> = (0..=6)
            .map(|k| json!({"id": format!("e-d{k}"), "productRevisions": []}))
            .collect();
        let (mut quick, mut walking) = quick_and_walking(config);
        let mut now = 0;
        let mut walks_at_additions = Vec::new();
        for step in 0..300 {
            // 40 simulated seconds a tick; the shortest delay is 720 s, so six additions in the six
            // ticks after the first walk need no walk of their own.
            now += 40_000;
            if (2..8).contains(&step) {
                walks_at_additions.push(quick.walks);
                let k = step - 1;
                // Each new deployment offers ten new devices and five d0 offers already.
                offer(&mut stores.0, &format!("d{k}"), 50 + 10 * k..60 + 10 * k);
                offer(&mut stores.1, &format!("d{k}"), 50 + 10 * k..60 + 10 * k);
                for s in [&mut stores.0, &mut stores.1] {
                    if let Some(a) = s.audiences.get_mut(&format!("a-d{k}")) {
                        for i in 5 * k..5 * k + 5 {
                            a.members.insert(id(i), AssetKind::Device);
                        }
                    }
                    s.touch();
                }
            }
            quick.tick(&mut stores.0, &catalog, now, false);
            walking.tick(&mut stores.1, &catalog, now, false);
            assert_eq!(outcomes(&quick), outcomes(&walking), "step {step}");
        }
        assert_eq!(
            walks_at_additions,
            vec![1; 6],
            "one walk (the first tick) before and through the six additions"
        );
        let installed = walking
            .devices()
            .values()
            .filter(|d| d.installed_entry.is_some())
            .count();
        let failed = walking.devices().values().filter(|d| d.error.is_some()).count();
        assert!(
            installed > 60 && failed > 5,
            "{installed} installed, {failed} failed"
        );
    }

    /// A deployment resumed while time is held back offers devices that came close to their delays
    /// before the pause: what may be held back narrows to them (the bound the walks worked out while
    /// it was paused came from fresh devices only), so they install at the same ticks as walking
    /// every offered device at every tick.
    #[test]
    fn a_deployment_resumed_while_time_is_held_back_narrows_it_to_its_devices() {
        let config = FleetConfig {
            install_hours: 1.0,
            seed: 9,
            ..Default::default()
        };
        let mut stores = (Store::new(1), Store::new(1));
        offer(&mut stores.0, "d0", 0..30);
        offer(&mut stores.1, "d0", 0..30);
        let catalog = vec![
            json!({"id": "e-d0", "productRevisions": []}),
            json!({"id": "e-d1", "productRevisions": []}),
        ];
        let (mut quick, mut walking) = quick_and_walking(config);
        let mut now = 0;
        let (mut resumed, mut walks_with_d1) = (None, 0);
        for step in 0..300 {
            now += 40_000;
            for s in [&mut stores.0, &mut stores.1] {
                match step {
                    12 => {
                        if let Some(d) = s.deployments.get_mut("d0") {
                            d.requested = "paused".into();
                        }
                        s.touch();
                    }
                    14 => offer(s, "d1", 100..130),
                    _ => {}
                }
            }
            if step == 14 {
                walks_with_d1 = quick.walks;
            }
            // Resumed once a walk has worked out what may be held back from d1's devices alone.
            if step > 14 && resumed.is_none() && quick.walks > walks_with_d1 && quick.pending_secs > 0.0 {
                resumed = Some(step);
                for s in [&mut stores.0, &mut stores.1] {
                    if let Some(d) = s.deployments.get_mut("d0") {
                        d.requested = "none".into();
                    }
                    s.touch();
                }
            }
            quick.tick(&mut stores.0, &catalog, now, false);
            walking.tick(&mut stores.1, &catalog, now, false);
            assert_eq!(outcomes(&quick), outcomes(&walking), "step {step}");
        }
        assert!(resumed.is_some(), "d0 resumed while time was held back");
        let installed = outcomes(&walking).iter().filter(|(_, e, _)| e.is_some()).count();
        assert_eq!(installed, 60, "every device installs");
    }

    /// Time held back while no device can reach its delay installs and fails the same devices at the
    /// same ticks as walking every offered device at every tick: devices offered once and twice (two
    /// deployments share part of their audiences), an error set through the admin API midway, a
    /// deployment paused and resumed while time is held back, devices added to an offered audience
    /// (new ones, and ones the other deployment offers already) and taken out of it while time is
    /// held back.
    #[test]
    fn held_back_time_installs_and_fails_as_walking_every_tick_does() {
        let config = FleetConfig {
            install_hours: 1.0,
            failure_rate: 0.2,
            silent_rate: 0.1,
            hotpatch_rate: 0.3,
            seed: 11,
            ..Default::default()
        };
        let mut store = Store::new(1);
        offer(&mut store, "d1", 0..60);
        offer(&mut store, "d2", 40..100);
        let catalog = vec![
            json!({"id": "e-d1", "productRevisions": []}),
            json!({"id": "e-d2", "productRevisions": []}),
        ];
        let (mut quick, mut walking) = quick_and_walking(config);
        let (mut sq, mut sw) = (store.clone(), store);
        let mut now = 0;
        let (mut paused_at, mut resumed) = (None, false);
        let (mut grown, mut shrunk) = (None::<usize>, false);
        for step in 0..300 {
            // 40 simulated seconds a tick: delays of 0.2 to 1.8 hours pass over about 160 ticks.
            now += 40_000;
            if step == 50 {
                quick.set(&mut sq, &id(3), None, Some(Some("invalidAzureADJoin".into())));
                walking.set(&mut sw, &id(3), None, Some(Some("invalidAzureADJoin".into())));
            }
            // d2 paused, and later resumed, while time is held back: that time was offered by d2 (or
            // not) as the deployments were before the change.
            let held = quick.pending_secs > 0.0;
            if held && grown.is_none() && step >= 20 {
                grown = Some(step);
                for s in [&mut sq, &mut sw] {
                    for i in (95..130).chain([3]) {
                        s.register_device(&id(i), &BTreeMap::new());
                        if let Some(a) = s.audiences.get_mut("a-d1") {
                            a.members.insert(id(i), AssetKind::Device);
                        }
                    }
                    s.touch();
                }
            }
            if held && !shrunk && grown.is_some_and(|at| step >= at + 15) {
                shrunk = true;
                for s in [&mut sq, &mut sw] {
                    if let Some(a) = s.audiences.get_mut("a-d1") {
                        for i in 10..20 {
                            a.members.remove(&id(i));
                        }
                    }
                    s.touch();
                }
            }
            let change = match paused_at {
                None if step >= 30 && held => Some("paused"),
                Some(at) if step >= at + 20 && held && !resumed => Some("none"),
                _ => None,
            };
            if let Some(requested) = change {
                if requested == "paused" {
                    paused_at = Some(step);
                } else {
                    resumed = true;
                }
                for s in [&mut sq, &mut sw] {
                    if let Some(d) = s.deployments.get_mut("d2") {
                        d.requested = requested.into();
                    }
                    s.touch();
                }
            }
            quick.tick(&mut sq, &catalog, now, false);
            walking.tick(&mut sw, &catalog, now, false);
            assert_eq!(outcomes(&quick), outcomes(&walking), "step {step}");
            let errors = |s: &Store| -> Vec<(String, Vec<String>)> {
                s.assets
                    .values()
                    .map(|a| (a.id.clone(), a.errors.clone()))
                    .collect()
            };
            assert_eq!(errors(&sq), errors(&sw), "step {step}");
        }
        let all = outcomes(&walking);
        let installed = all.iter().filter(|(_, e, _)| e.is_some()).count();
        let failed = all.iter().filter(|(_, _, e)| e.is_some()).count();
        let both = all
            .iter()
            .filter(|(_, e, _)| e.as_deref() == Some("e-d2"))
            .count();
        assert!(
            installed > 40 && failed > 5 && both > 0,
            "{installed} {failed} {both}"
        );
        assert!(
            paused_at.is_some() && resumed,
            "d2 was paused and resumed while time was held back"
        );
        assert!(
            grown.is_some() && shrunk,
            "d1's audience grew and shrank while time was held back"
        );
        assert!(
            quick.walks * 2 < walking.walks,
            "held back: {} walks against {}",
            quick.walks,
            walking.walks
        );
    }
}
