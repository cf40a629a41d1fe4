//! [`ContainerRuntime`] on a real Docker daemon through bollard.
//!
//! The daemon here may be old (Engine 20.10, API 1.41): the client negotiates the API
//! version at connect time. Every call treats "already there" / "already gone" as success.

use std::collections::HashMap;

use async_trait::async_trait;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
    PortBinding, RestartPolicy, RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, ListNetworksOptions, ListVolumesOptions,
    RemoveContainerOptions, RemoveVolumeOptions, StopContainerOptions, UploadToContainerOptions,
};
use bollard::Docker;

use super::{
    ContainerRuntime, ContainerSpec, ContainerStatus, ManagedObject, ObjectKind, RuntimeError,
    RuntimeResult, FILLER_BROKER, LABEL_BROKER, LABEL_INSTALLATION, LABEL_PROGRAM_IMAGE,
};

#[derive(Clone)]
pub struct DockerRuntime {
    docker: Docker,
}

impl DockerRuntime {
    /// Connects to the local daemon (`DOCKER_HOST` or the default socket) and negotiates
    /// the API version.
    pub async fn connect() -> RuntimeResult<Self> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| RuntimeError::Unavailable(e.to_string()))?
            .negotiate_version()
            .await
            .map_err(|e| RuntimeError::Unavailable(e.to_string()))?;
        Ok(Self { docker })
    }

    pub fn client(&self) -> &Docker {
        &self.docker
    }
}

fn status_of(e: &BollardError) -> Option<u16> {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

fn failed(context: impl Into<String>, e: BollardError) -> RuntimeError {
    match e {
        BollardError::DockerResponseServerError { message, .. } => RuntimeError::Failed {
            context: context.into(),
            message,
        },
        other if status_of(&other).is_none() => RuntimeError::Unavailable(other.to_string()),
        other => RuntimeError::Failed {
            context: context.into(),
            message: other.to_string(),
        },
    }
}

/// Builds the tar archive uploaded into the container root.
fn files_tar(spec: &ContainerSpec) -> RuntimeResult<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dirs: Vec<String> = Vec::new();
    for f in &spec.files {
        let rel = f.path.trim_start_matches('/');
        let mut acc = String::new();
        let parts: Vec<&str> = rel.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            acc.push_str(part);
            acc.push('/');
            if !dirs.contains(&acc) {
                dirs.push(acc.clone());
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                h.set_uid(0);
                h.set_gid(0);
                builder
                    .append_data(&mut h, &acc, std::io::empty())
                    .map_err(|e| RuntimeError::Failed {
                        context: "tar".into(),
                        message: e.to_string(),
                    })?;
            }
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(f.contents.len() as u64);
        h.set_mode(f.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
        builder
            .append_data(&mut h, rel, f.contents.as_slice())
            .map_err(|e| RuntimeError::Failed {
                context: "tar".into(),
                message: e.to_string(),
            })?;
    }
    builder.into_inner().map_err(|e| RuntimeError::Failed {
        context: "tar".into(),
        message: e.to_string(),
    })
}

#[async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn ping(&self) -> RuntimeResult<()> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| RuntimeError::Unavailable(e.to_string()))
    }

    async fn image_id(&self, image: &str) -> RuntimeResult<Option<String>> {
        match self.docker.inspect_image(image).await {
            Ok(i) => Ok(i.id),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(failed(format!("inspecting image {image}"), e)),
        }
    }

    async fn ensure_network(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> RuntimeResult<()> {
        match self
            .docker
            .inspect_network(
                name,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(failed(format!("inspecting network {name}"), e)),
        }
        let req = NetworkCreateRequest {
            name: name.to_owned(),
            driver: Some("bridge".into()),
            labels: Some(labels.clone()),
            ..Default::default()
        };
        match self.docker.create_network(req).await {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(409) => Ok(()),
            Err(e) => Err(failed(format!("creating network {name}"), e)),
        }
    }

    async fn ensure_volume(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> RuntimeResult<()> {
        match self.docker.inspect_volume(name).await {
            Ok(_) => return Ok(()),
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(failed(format!("inspecting volume {name}"), e)),
        }
        let req = VolumeCreateRequest {
            name: Some(name.to_owned()),
            labels: Some(labels.clone()),
            ..Default::default()
        };
        // Creating an existing local volume is a no-op in Docker, but an event.
        self.docker
            .create_volume(req)
            .await
            .map(|_| ())
            .map_err(|e| failed(format!("creating volume {name}"), e))
    }

    async fn ensure_container(&self, spec: &ContainerSpec) -> RuntimeResult<()> {
        let existing = self.container_status(&spec.name).await?;
        if existing.is_none() {
            if self.image_id(&spec.image).await?.is_none() {
                return Err(RuntimeError::ImageMissing(spec.image.clone()));
            }
            let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
            let mut exposed = Vec::new();
            for (cport, hport) in &spec.ports {
                let key = format!("{cport}/tcp");
                exposed.push(key.clone());
                bindings.insert(
                    key,
                    Some(vec![PortBinding {
                        host_ip: Some(spec.publish_host.clone()),
                        host_port: Some(hport.to_string()),
                    }]),
                );
            }
            let host_config = HostConfig {
                memory: Some(spec.memory_bytes),
                memory_swap: Some(spec.memory_bytes),
                nano_cpus: Some(spec.nano_cpus),
                pids_limit: Some(4096),
                port_bindings: Some(bindings),
                binds: Some(
                    spec.volume
                        .iter()
                        .map(|(name, path)| format!("{name}:{path}"))
                        .chain(
                            spec.program_volumes
                                .iter()
                                .map(|(name, path)| format!("{name}:{path}:ro")),
                        )
                        .collect(),
                ),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            };
            let mut endpoints = HashMap::new();
            endpoints.insert(
                spec.network.clone(),
                EndpointSettings {
                    aliases: Some(vec![spec.hostname.clone()]),
                    ..Default::default()
                },
            );
            let body = ContainerCreateBody {
                image: Some(spec.image.clone()),
                entrypoint: spec.command.clone(),
                hostname: Some(spec.hostname.clone()),
                labels: Some(spec.labels.clone()),
                exposed_ports: Some(exposed),
                host_config: Some(host_config),
                networking_config: Some(NetworkingConfig {
                    endpoints_config: Some(endpoints),
                }),
                stop_timeout: Some(30),
                ..Default::default()
            };
            let opts = CreateContainerOptions {
                name: Some(spec.name.clone()),
                ..Default::default()
            };
            match self.docker.create_container(Some(opts), body).await {
                Ok(_) => {}
                Err(e) if status_of(&e) == Some(409) => {}
                Err(e) => return Err(failed(format!("creating container {}", spec.name), e)),
            }
        } else if existing.as_ref().is_some_and(|s| s.running) {
            return Ok(());
        }
        if !spec.files.is_empty() {
            let tar = files_tar(spec)?;
            let opts = UploadToContainerOptions {
                path: "/".into(),
                ..Default::default()
            };
            self.docker
                .upload_to_container(&spec.name, Some(opts), bollard::body_full(tar.into()))
                .await
                .map_err(|e| failed(format!("uploading files into {}", spec.name), e))?;
        }
        Ok(())
    }

    async fn container_status(&self, name: &str) -> RuntimeResult<Option<ContainerStatus>> {
        match self
            .docker
            .inspect_container(
                name,
                None::<bollard::query_parameters::InspectContainerOptions>,
            )
            .await
        {
            Ok(c) => {
                let state = c.state.unwrap_or_default();
                Ok(Some(ContainerStatus {
                    running: state.running.unwrap_or(false),
                    exit_code: state.exit_code,
                    restart_count: c.restart_count.unwrap_or(0),
                    image_id: c.image.unwrap_or_default(),
                    created: c
                        .created
                        .as_deref()
                        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.with_timezone(&chrono::Utc)),
                }))
            }
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(failed(format!("inspecting container {name}"), e)),
        }
    }

    async fn start_container(&self, name: &str) -> RuntimeResult<()> {
        match self
            .docker
            .start_container(
                name,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(304) => Ok(()),
            Err(e) => Err(failed(format!("starting container {name}"), e)),
        }
    }

    async fn stop_container(&self, name: &str, grace_secs: i64) -> RuntimeResult<()> {
        let opts = StopContainerOptions {
            t: Some(grace_secs as i32),
            signal: None,
        };
        match self.docker.stop_container(name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if matches!(status_of(&e), Some(304) | Some(404)) => Ok(()),
            Err(e) => Err(failed(format!("stopping container {name}"), e)),
        }
    }

    async fn kill_container(&self, name: &str) -> RuntimeResult<()> {
        let opts = bollard::query_parameters::KillContainerOptions {
            signal: "SIGKILL".to_owned(),
        };
        match self.docker.kill_container(name, Some(opts)).await {
            Ok(()) => Ok(()),
            // 404: gone; 409: not running.
            Err(e) if matches!(status_of(&e), Some(404) | Some(409)) => Ok(()),
            Err(e) => Err(failed(format!("killing container {name}"), e)),
        }
    }

    async fn remove_container(&self, name: &str) -> RuntimeResult<()> {
        let opts = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self.docker.remove_container(name, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            // Removal already in progress (409): the next pass will see it gone.
            Err(e) => Err(failed(format!("removing container {name}"), e)),
        }
    }

    async fn remove_volume(&self, name: &str) -> RuntimeResult<()> {
        match self
            .docker
            .remove_volume(name, Some(RemoveVolumeOptions { force: true }))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(failed(format!("removing volume {name}"), e)),
        }
    }

    async fn remove_network(&self, name: &str) -> RuntimeResult<()> {
        match self.docker.remove_network(name).await {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(failed(format!("removing network {name}"), e)),
        }
    }

    async fn list_program_volumes(
        &self,
        installation: &str,
    ) -> RuntimeResult<Vec<(String, String)>> {
        let filter = HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{LABEL_INSTALLATION}={installation}"),
                LABEL_PROGRAM_IMAGE.to_owned(),
            ],
        )]);
        let volumes = self
            .docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filter),
            }))
            .await
            .map_err(|e| failed("listing volumes", e))?;
        Ok(volumes
            .volumes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| {
                let image = v.labels.get(LABEL_PROGRAM_IMAGE)?.clone();
                Some((v.name, image))
            })
            .collect())
    }

    async fn remove_unused_volume(&self, name: &str) -> RuntimeResult<bool> {
        // Without force: Docker refuses (409) to remove a volume a container mounts.
        match self
            .docker
            .remove_volume(name, None::<RemoveVolumeOptions>)
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if status_of(&e) == Some(404) => Ok(true),
            Err(e) if status_of(&e) == Some(409) => Ok(false),
            Err(e) => Err(failed(format!("removing volume {name}"), e)),
        }
    }

    async fn fill_program_volumes(
        &self,
        image: &str,
        volumes: &[(String, String)],
        labels: &HashMap<String, String>,
    ) -> RuntimeResult<()> {
        let mut missing = false;
        for (name, _) in volumes {
            match self.docker.inspect_volume(name).await {
                Ok(_) => {}
                Err(e) if status_of(&e) == Some(404) => {
                    missing = true;
                    self.ensure_volume(name, labels).await?;
                }
                Err(e) => return Err(failed(format!("inspecting volume {name}"), e)),
            }
        }
        let Some((first, _)) = volumes.first() else {
            return Ok(());
        };
        // A filler that a stopped process left between its create and its removal pins
        // the volumes and the image: it goes on every pass, whatever is missing (the
        // volumes were filled at its create). It is also labelled as belonging to no
        // broker, so this installation's garbage collection removes it.
        let filler = format!("{first}-filler");
        self.remove_container(&filler).await?;
        if !missing {
            return Ok(());
        }
        if self.image_id(image).await?.is_none() {
            return Err(RuntimeError::ImageMissing(image.to_owned()));
        }
        let mut filler_labels = labels.clone();
        filler_labels.insert(LABEL_BROKER.to_owned(), FILLER_BROKER.to_owned());
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            labels: Some(filler_labels),
            host_config: Some(HostConfig {
                binds: Some(
                    volumes
                        .iter()
                        .map(|(name, path)| format!("{name}:{path}:ro"))
                        .collect(),
                ),
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptions {
            name: Some(filler.clone()),
            ..Default::default()
        };
        match self.docker.create_container(Some(opts), body).await {
            Ok(_) => {}
            Err(e) if status_of(&e) == Some(409) => {}
            Err(e) => return Err(failed(format!("creating container {filler}"), e)),
        }
        self.remove_container(&filler).await
    }

    async fn list_managed(&self, installation: &str) -> RuntimeResult<Vec<ManagedObject>> {
        let filter = HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_INSTALLATION}={installation}")],
        )]);
        let mut out = Vec::new();
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filter.clone()),
                ..Default::default()
            }))
            .await
            .map_err(|e| failed("listing containers", e))?;
        for c in containers {
            let labels = c.labels.unwrap_or_default();
            let name = c
                .names
                .unwrap_or_default()
                .first()
                .map(|n| n.trim_start_matches('/').to_owned());
            if let (Some(name), Some(b)) = (name, labels.get(LABEL_BROKER)) {
                out.push(ManagedObject {
                    kind: ObjectKind::Container,
                    name,
                    broker_id: b.clone(),
                });
            }
        }
        let volumes = self
            .docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filter.clone()),
            }))
            .await
            .map_err(|e| failed("listing volumes", e))?;
        for v in volumes.volumes.unwrap_or_default() {
            if let Some(b) = v.labels.get(LABEL_BROKER) {
                out.push(ManagedObject {
                    kind: ObjectKind::Volume,
                    name: v.name.clone(),
                    broker_id: b.clone(),
                });
            }
        }
        let networks = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filter),
            }))
            .await
            .map_err(|e| failed("listing networks", e))?;
        for n in networks {
            let labels = n.labels.unwrap_or_default();
            if let (Some(name), Some(b)) = (n.name, labels.get(LABEL_BROKER)) {
                out.push(ManagedObject {
                    kind: ObjectKind::Network,
                    name,
                    broker_id: b.clone(),
                });
            }
        }
        Ok(out)
    }
}
