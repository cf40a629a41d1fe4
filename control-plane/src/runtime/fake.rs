//! In-memory [`ContainerRuntime`] for unit tests of the reconciler's workflow logic.
//! It records objects and calls; it never runs anything. Real behaviour is proven by
//! the end-to-end tests against Docker.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    ContainerRuntime, ContainerSpec, ContainerStatus, ManagedObject, ObjectKind, RuntimeError,
    RuntimeResult, LABEL_BROKER, LABEL_INSTALLATION, LABEL_PROGRAM_IMAGE,
};

#[derive(Debug, Default)]
struct State {
    images: Vec<String>,
    networks: BTreeMap<String, HashMap<String, String>>,
    volumes: BTreeMap<String, HashMap<String, String>>,
    /// Rebuilds per image name (`rebuild_image`): a new build is a new image id.
    builds: HashMap<String, u32>,
    containers: BTreeMap<String, FakeContainer>,
    /// Names of operations that fail once, e.g. `"start_container"`.
    fail_next: Vec<String>,
    calls: Vec<String>,
}

#[derive(Debug)]
struct FakeContainer {
    spec: ContainerSpec,
    running: bool,
    created: chrono::DateTime<chrono::Utc>,
    /// The id of the image the container was created from.
    image_id: String,
}

impl State {
    /// A Docker-shaped id (`sha256:` and 64 hex digits) per image name and build.
    fn image_id(&self, image: &str) -> String {
        use std::hash::{Hash, Hasher};
        let build = self.builds.get(image).copied().unwrap_or(0);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (image, build).hash(&mut h);
        format!("sha256:{:016x}{}", h.finish(), "0".repeat(48))
    }
}

#[derive(Debug, Default)]
pub struct FakeRuntime {
    state: Mutex<State>,
}

impl FakeRuntime {
    pub fn with_images(images: &[&str]) -> Self {
        let rt = Self::default();
        rt.state.lock().unwrap().images = images.iter().map(|s| s.to_string()).collect();
        rt
    }

    /// Simulates a rebuilt image under the same tag (e.g. a newer patch release): new
    /// containers get a new image id, existing ones keep theirs.
    pub fn rebuild_image(&self, image: &str) {
        *self
            .state
            .lock()
            .unwrap()
            .builds
            .entry(image.to_owned())
            .or_default() += 1;
    }

    /// Makes the next call of `op` fail with a runtime error.
    pub fn fail_next(&self, op: &str) {
        self.state.lock().unwrap().fail_next.push(op.to_owned());
    }

    /// Volumes (name, labels), for tests.
    pub fn volumes(&self) -> Vec<(String, HashMap<String, String>)> {
        self.state
            .lock()
            .unwrap()
            .volumes
            .iter()
            .map(|(n, l)| (n.clone(), l.clone()))
            .collect()
    }

    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn container_spec(&self, name: &str) -> Option<ContainerSpec> {
        self.state
            .lock()
            .unwrap()
            .containers
            .get(name)
            .map(|c| c.spec.clone())
    }

    /// Simulates the container dying (or `docker stop` from outside).
    pub fn kill(&self, name: &str) {
        if let Some(c) = self.state.lock().unwrap().containers.get_mut(name) {
            c.running = false;
        }
    }

    /// Containers, broker volumes (program volumes, shared by every broker of an
    /// image, are not counted: see [`Self::volumes`]) and networks.
    pub fn counts(&self) -> (usize, usize, usize) {
        let s = self.state.lock().unwrap();
        let broker_volumes = s
            .volumes
            .values()
            .filter(|l| !l.contains_key(LABEL_PROGRAM_IMAGE))
            .count();
        (s.containers.len(), broker_volumes, s.networks.len())
    }

    fn enter(&self, op: &str) -> RuntimeResult<std::sync::MutexGuard<'_, State>> {
        let mut s = self.state.lock().unwrap();
        s.calls.push(op.to_owned());
        if let Some(i) = s.fail_next.iter().position(|f| f == op) {
            s.fail_next.remove(i);
            return Err(RuntimeError::Failed {
                context: op.into(),
                message: "injected failure".into(),
            });
        }
        Ok(s)
    }
}

#[async_trait]
impl ContainerRuntime for FakeRuntime {
    async fn ping(&self) -> RuntimeResult<()> {
        self.enter("ping").map(|_| ())
    }

    async fn image_id(&self, image: &str) -> RuntimeResult<Option<String>> {
        let s = self.enter("image_id")?;
        Ok(s.images
            .iter()
            .any(|i| i == image)
            .then(|| s.image_id(image)))
    }

    async fn ensure_network(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> RuntimeResult<()> {
        let mut s = self.enter("ensure_network")?;
        s.networks
            .entry(name.to_owned())
            .or_insert_with(|| labels.clone());
        Ok(())
    }

    async fn ensure_volume(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> RuntimeResult<()> {
        let mut s = self.enter("ensure_volume")?;
        s.volumes
            .entry(name.to_owned())
            .or_insert_with(|| labels.clone());
        Ok(())
    }

    async fn ensure_container(&self, spec: &ContainerSpec) -> RuntimeResult<()> {
        let mut s = self.enter("ensure_container")?;
        if !s.images.contains(&spec.image) {
            return Err(RuntimeError::ImageMissing(spec.image.clone()));
        }
        let running = s.containers.get(&spec.name).is_some_and(|c| c.running);
        if !running {
            let (created, image_id) = match s.containers.get(&spec.name) {
                Some(c) => (c.created, c.image_id.clone()),
                None => (chrono::Utc::now(), s.image_id(&spec.image)),
            };
            let container = FakeContainer {
                spec: spec.clone(),
                running: false,
                created,
                image_id,
            };
            s.containers.insert(spec.name.clone(), container);
        }
        Ok(())
    }

    async fn container_status(&self, name: &str) -> RuntimeResult<Option<ContainerStatus>> {
        let s = self.enter("container_status")?;
        Ok(s.containers.get(name).map(|c| ContainerStatus {
            running: c.running,
            exit_code: if c.running { None } else { Some(0) },
            restart_count: 0,
            image_id: c.image_id.clone(),
            created: Some(c.created),
        }))
    }

    async fn start_container(&self, name: &str) -> RuntimeResult<()> {
        let mut s = self.enter("start_container")?;
        match s.containers.get_mut(name) {
            Some(c) => {
                c.running = true;
                Ok(())
            }
            None => Err(RuntimeError::Failed {
                context: "start".into(),
                message: format!("no container {name}"),
            }),
        }
    }

    async fn stop_container(&self, name: &str, _grace_secs: i64) -> RuntimeResult<()> {
        let mut s = self.enter("stop_container")?;
        if let Some(c) = s.containers.get_mut(name) {
            c.running = false;
        }
        Ok(())
    }

    async fn kill_container(&self, name: &str) -> RuntimeResult<()> {
        let mut s = self.enter("kill_container")?;
        if let Some(c) = s.containers.get_mut(name) {
            c.running = false;
        }
        Ok(())
    }

    async fn remove_container(&self, name: &str) -> RuntimeResult<()> {
        self.enter("remove_container")?.containers.remove(name);
        Ok(())
    }

    async fn remove_volume(&self, name: &str) -> RuntimeResult<()> {
        self.enter("remove_volume")?.volumes.remove(name);
        Ok(())
    }

    async fn remove_network(&self, name: &str) -> RuntimeResult<()> {
        self.enter("remove_network")?.networks.remove(name);
        Ok(())
    }

    async fn list_program_volumes(
        &self,
        installation: &str,
    ) -> RuntimeResult<Vec<(String, String)>> {
        let s = self.enter("list_program_volumes")?;
        Ok(s.volumes
            .iter()
            .filter(|(_, l)| l.get(LABEL_INSTALLATION).map(String::as_str) == Some(installation))
            .filter_map(|(name, l)| Some((name.clone(), l.get(LABEL_PROGRAM_IMAGE)?.clone())))
            .collect())
    }

    async fn fill_program_volumes(
        &self,
        _image: &str,
        volumes: &[(String, String)],
        labels: &HashMap<String, String>,
    ) -> RuntimeResult<()> {
        let mut s = self.enter("fill_program_volumes")?;
        for (name, _) in volumes {
            s.volumes
                .entry(name.clone())
                .or_insert_with(|| labels.clone());
        }
        Ok(())
    }

    async fn remove_unused_volume(&self, name: &str) -> RuntimeResult<bool> {
        let mut s = self.enter("remove_unused_volume")?;
        let in_use = s.containers.values().any(|c| {
            c.spec
                .volume
                .iter()
                .chain(&c.spec.program_volumes)
                .any(|(v, _)| v == name)
        });
        if !in_use {
            s.volumes.remove(name);
        }
        Ok(!in_use)
    }

    async fn list_managed(&self, installation: &str) -> RuntimeResult<Vec<ManagedObject>> {
        let s = self.enter("list_managed")?;
        let mine = |l: &HashMap<String, String>| {
            l.get(LABEL_INSTALLATION).map(String::as_str) == Some(installation)
        };
        let mut out = Vec::new();
        for (name, c) in &s.containers {
            let spec = &c.spec;
            if mine(&spec.labels) {
                out.push(ManagedObject {
                    kind: ObjectKind::Container,
                    name: name.clone(),
                    broker_id: spec.labels[LABEL_BROKER].clone(),
                });
            }
        }
        for (name, labels) in &s.volumes {
            if let (true, Some(broker)) = (mine(labels), labels.get(LABEL_BROKER)) {
                out.push(ManagedObject {
                    kind: ObjectKind::Volume,
                    name: name.clone(),
                    broker_id: broker.clone(),
                });
            }
        }
        for (name, labels) in &s.networks {
            if mine(labels) {
                out.push(ManagedObject {
                    kind: ObjectKind::Network,
                    name: name.clone(),
                    broker_id: labels[LABEL_BROKER].clone(),
                });
            }
        }
        Ok(out)
    }
}
