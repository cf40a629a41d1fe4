//! The container runtime seam.
//!
//! The reconciler drives brokers only through [`ContainerRuntime`]. Every method is
//! idempotent ("ensure"/"remove if present"), so a step can be retried after a crash at
//! any point. [`docker::DockerRuntime`] is the real implementation (bollard);
//! [`fake::FakeRuntime`] is an in-memory one for unit tests of workflow logic.

pub mod docker;
pub mod fake;

use std::collections::HashMap;

use async_trait::async_trait;

/// Label keys on every Docker object Berth creates.
pub const LABEL_MANAGED: &str = "berth.managed";
pub const LABEL_INSTALLATION: &str = "berth.installation";
pub const LABEL_BROKER: &str = "berth.broker-id";
pub const LABEL_NODE: &str = "berth.node";
/// On a program volume: the id of the image it was filled from.
pub const LABEL_PROGRAM_IMAGE: &str = "berth.program-image";
/// The `LABEL_BROKER` of the short-lived container that fills program volumes
/// (`ContainerRuntime::fill_program_volumes`): no broker has this id.
pub const FILLER_BROKER: &str = "program-volume-filler";
/// Availability zone of a node (a placement label; one host serves every zone today).
pub const LABEL_ZONE: &str = "berth.zone";

/// A file placed into the container filesystem before the container starts.
#[derive(Clone)]
pub struct ContainerFile {
    pub path: String,
    pub contents: Vec<u8>,
    pub mode: u32,
}

impl std::fmt::Debug for ContainerFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Contents may be secret.
        f.debug_struct("ContainerFile")
            .field("path", &self.path)
            .field("mode", &self.mode)
            .finish()
    }
}

/// What a broker node container must look like.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub name: String,
    pub hostname: String,
    pub image: String,
    pub network: String,
    pub labels: HashMap<String, String>,
    pub memory_bytes: i64,
    pub nano_cpus: i64,
    /// (container port, host port) published on `publish_host`.
    pub ports: Vec<(u16, u16)>,
    pub publish_host: String,
    /// (volume name, mount path); a load balancer has none.
    pub volume: Option<(String, String)>,
    /// (volume name, mount path) mounted read-only: the engine's program directories
    /// (`EngineProfile::program_dirs`). Docker fills an empty volume from the image's
    /// content at that path when the container is created.
    pub program_volumes: Vec<(String, String)>,
    /// Replaces the image's entrypoint (the agent), e.g. for the load balancer.
    pub command: Option<Vec<String>>,
    pub files: Vec<ContainerFile>,
}

/// Observed state of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub running: bool,
    pub exit_code: Option<i64>,
    pub restart_count: i64,
    /// Image id the container was created from.
    pub image_id: String,
    /// When the container was created (a reboot recreates it).
    pub created: Option<chrono::DateTime<chrono::Utc>>,
}

/// Kinds of Docker objects Berth owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Container,
    Volume,
    Network,
}

/// A Docker object carrying Berth's labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedObject {
    pub kind: ObjectKind,
    pub name: String,
    pub broker_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("image {0} is not present; build it with `make images`")]
    ImageMissing(String),
    /// A missing image could not be built (the reason, without secrets).
    #[error("building the engine image failed: {0}")]
    ImageBuild(String),
    #[error("container runtime unavailable: {0}")]
    Unavailable(String),
    #[error("{context}: {message}")]
    Failed { context: String, message: String },
}

pub type RuntimeResult<T> = Result<T, RuntimeError>;

#[async_trait]
pub trait ContainerRuntime: Send + Sync + 'static {
    async fn ping(&self) -> RuntimeResult<()>;
    /// Image id of `image`, or `None` when it is not present.
    async fn image_id(&self, image: &str) -> RuntimeResult<Option<String>>;
    async fn ensure_network(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> RuntimeResult<()>;
    async fn ensure_volume(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> RuntimeResult<()>;
    /// Creates the container if it does not exist. When it exists but is not running,
    /// its files are (re)written so that a crash between create and upload heals.
    async fn ensure_container(&self, spec: &ContainerSpec) -> RuntimeResult<()>;
    async fn container_status(&self, name: &str) -> RuntimeResult<Option<ContainerStatus>>;
    /// Starts the container; a running container is left alone.
    async fn start_container(&self, name: &str) -> RuntimeResult<()>;
    /// Stops the container (SIGTERM, then SIGKILL after `grace_secs`); absent is fine.
    async fn stop_container(&self, name: &str, grace_secs: i64) -> RuntimeResult<()>;
    /// SIGKILLs the container at once (also a paused one: a hung node whose lock must
    /// pass on); absent or stopped is fine. Its restart policy and the reconciler bring
    /// it back.
    async fn kill_container(&self, name: &str) -> RuntimeResult<()>;
    async fn remove_container(&self, name: &str) -> RuntimeResult<()>;
    async fn remove_volume(&self, name: &str) -> RuntimeResult<()>;
    async fn remove_network(&self, name: &str) -> RuntimeResult<()>;
    /// Every container, volume and network labelled with this installation.
    async fn list_managed(&self, installation: &str) -> RuntimeResult<Vec<ManagedObject>>;
    /// This installation's program volumes: (name, id of the image they were filled
    /// from).
    async fn list_program_volumes(
        &self,
        installation: &str,
    ) -> RuntimeResult<Vec<(String, String)>>;
    /// Removes the volume unless a container still mounts it; whether it was removed
    /// (absent counts as removed).
    async fn remove_unused_volume(&self, name: &str) -> RuntimeResult<bool>;
    /// Creates the program volumes of `volumes` (volume name, directory of `image`) that
    /// are missing, labelled `labels`, and has them filled with the image's files at
    /// those directories before any broker needs them: Docker copies an image's content
    /// into an empty named volume when it creates a container that mounts it, so this
    /// creates one container of `image` (never started, on no network) and removes it.
    /// Volumes that exist are left alone; one a crash left empty is filled by the next
    /// container that mounts it. A filler container a stopped process left behind is
    /// removed by every call.
    async fn fill_program_volumes(
        &self,
        image: &str,
        volumes: &[(String, String)],
        labels: &HashMap<String, String>,
    ) -> RuntimeResult<()>;
}
