//! Rendering `activemq.xml`: Berth's parts plus what the tenant's configuration revision
//! may set.
//!
//! **Berth owns** the broker's identity and plumbing: `brokerName`, `dataDirectory`,
//! `useJmx="false"`, the transport connectors (container ports of
//! [`agent_contract::ports::activemq`]), KahaDB on the data volume with the shared-file
//! locker settings measured for active/standby (`lockKeepAlivePeriod=0`,
//! [`CHECKPOINT_INTERVAL_MS`], [`LOCK_ACQUIRE_SLEEP_MS`]), `systemUsage`
//! (`memoryUsage percentOfJvmHeap=70`, fixed store and temp limits), the SSL context, the
//! `statisticsBrokerPlugin` and JAAS authentication (`jaasAuthenticationPlugin`).
//!
//! **The tenant's revision** (`spec.engine_config`, an activemq.xml-shaped document whose
//! root is `<broker>`, or `<beans>` around one, already sanitized by the control plane to
//! Amazon MQ's allowed elements) may set, and the agent copies:
//! - the broker attributes Amazon MQ allows ([`BROKER_ATTRIBUTES`]), e.g.
//!   `schedulePeriodForDestinationPurge`, `advisorySupport`, `persistent`,
//!   `schedulerSupport`;
//! - `destinationPolicy`, `destinationInterceptors`, `destinations`, `networkConnectors`;
//! - the plugins Amazon MQ allows: `redeliveryPlugin`, `timeStampingBrokerPlugin`,
//!   `forcePersistencyModeBrokerPlugin`, `discardingDLQBrokerPlugin` and the
//!   `authorizationPlugin`'s map (see below). Everything else (transport connectors,
//!   persistence, system usage, other plugins, `<bean>`s …) is Berth's and ignored.
//!
//! **Defaults, each replaced by the tenant's element when the revision has one**:
//! persistent delivery (`persistent="true"`), `schedulerSupport="true"`, a
//! `destinationPolicy` with an individual dead-letter queue per destination
//! (`individualDeadLetterStrategy queuePrefix="DLQ."`, queues with
//! `useQueueForQueueMessages`, topics with `useQueueForTopicMessages`; Amazon MQ's topic
//! `constantPendingMessageLimitStrategy limit=3000`), and a `redeliveryPlugin` whose
//! default policy redelivers 6 times with exponential back-off from 1 s (×2) before the
//! DLQ. The plugin needs `schedulerSupport`, so it is left out when the tenant switches
//! that off.
//!
//! **Authorization follows Amazon MQ's model.** Without an `authorizationMap` in the
//! revision there is no authorization plugin: every authenticated user may read, write
//! and administer every destination (Amazon MQ's default). With one, authorization is on
//! and the map is the tenant's entries plus Berth's: group `admins` (spec users with
//! `admin`, and the agent's internal probe user) gets read/write/admin on every queue and
//! topic (`>`), and every authenticated user (`*`) may use `ActiveMQ.Advisory.>` and,
//! unless the tenant has its own `tempDestinationAuthorizationEntry`, temporary
//! destinations (JMS clients need both). ActiveMQ unions the ACLs of all matching
//! entries, so Berth's entries only ever add rights for `admins`.
//!
//! **Safety of copied content.** The revision is read with roxmltree (no DTDs, so no
//! entities) and written with quick-xml (every value escaped), never spliced as text.
//! Copied elements must be in ActiveMQ's namespace (or none) and in [`ALLOWED_ELEMENTS`];
//! attributes must be un-namespaced and their values may not contain `${` or `#{`: the
//! file is loaded by Spring, which would expand property placeholders and evaluate SpEL
//! expressions (code execution). What is dropped is reported by name (never by value) in
//! [`Rendered::dropped`], and the agent logs it.

use std::path::{Path, PathBuf};

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

/// ActiveMQ's XBean namespace.
pub const CORE_NS: &str = "http://activemq.apache.org/schema/core";
const BEANS_NS: &str = "http://www.springframework.org/schema/beans";
const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";
const SCHEMA_LOCATION: &str = "http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans-2.0.xsd http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd";

/// KahaDB's index checkpoint period (ms). A standby that takes over replays the journal
/// written since the last checkpoint, with a cold JVM; a shorter period leaves it less
/// to replay (at 1000 ms a takeover under load replayed ~180 operations in 0.42 s).
pub const CHECKPOINT_INTERVAL_MS: &str = "500";
/// How often a standby's shared-file locker tries the store's lock (ms): half of it, on
/// average, is part of every failover. A try is one `tryLock` on a local file.
pub const LOCK_ACQUIRE_SLEEP_MS: &str = "50";
/// The JAAS configuration name in login.config.
pub const JAAS_CONFIGURATION: &str = "activemq";
/// Berth's administrators group.
pub const ADMINS_GROUP: &str = "admins";

/// `<broker>` attributes a revision may set (Amazon MQ's list).
pub const BROKER_ATTRIBUTES: &[&str] = &[
    "advisorySupport",
    "allowTempAutoCreationOnSend",
    "cacheTempDestinations",
    "consumerSystemUsagePortion",
    "dedicatedTaskRunner",
    "deleteAllMessagesOnStartup",
    "enableMessageExpirationOnActiveDurableSubs",
    "keepDurableSubsActive",
    "maxPurgedDestinationsPerSweep",
    "maxSchedulerRepeatAllowed",
    "monitorConnectionSplits",
    "networkConnectorStartAsync",
    "offlineDurableSubscriberTaskSchedule",
    "offlineDurableSubscriberTimeout",
    "persistenceThreadPriority",
    "persistent",
    "populateJMSXUserID",
    "producerSystemUsagePortion",
    "rejectDurableConsumers",
    "rollbackOnlyOnAsyncException",
    "schedulePeriodForDestinationPurge",
    "schedulerSupport",
    "splitSystemUsageForProducersConsumers",
    "taskRunnerPriority",
    "timeBeforePurgeTempDestinations",
    "useAuthenticatedPrincipalForJMSXUserID",
    "useMirroredQueues",
    "useTempMirroredQueues",
    "useVirtualDestSubs",
    "useVirtualDestSubsOnCreation",
    "useVirtualTopics",
];

/// Plugins a revision may add (besides the authorization map, handled separately).
pub const TENANT_PLUGINS: &[&str] = &[
    "discardingDLQBrokerPlugin",
    "forcePersistencyModeBrokerPlugin",
    "redeliveryPlugin",
    "timeStampingBrokerPlugin",
];

/// Elements that may appear inside copied subtrees: Amazon MQ's permitted elements and
/// the property (collection) elements that hold them.
pub const ALLOWED_ELEMENTS: &[&str] = &[
    // destination policy
    "destinationPolicy",
    "policyMap",
    "policyEntries",
    "policyEntry",
    "defaultEntry",
    "deadLetterStrategy",
    "individualDeadLetterStrategy",
    "sharedDeadLetterStrategy",
    "discarding",
    "dispatchPolicy",
    "priorityDispatchPolicy",
    "priorityNetworkDispatchPolicy",
    "roundRobinDispatchPolicy",
    "simpleDispatchPolicy",
    "strictOrderDispatchPolicy",
    "messageEvictionStrategy",
    "oldestMessageEvictionStrategy",
    "oldestMessageWithLowestPriorityEvictionStrategy",
    "uniquePropertyMessageEvictionStrategy",
    "messageGroupMapFactory",
    "cachedMessageGroupMapFactory",
    "messageGroupHashBucketFactory",
    "simpleMessageGroupMapFactory",
    "pendingMessageLimitStrategy",
    "constantPendingMessageLimitStrategy",
    "prefetchRatePendingMessageLimitStrategy",
    "pendingDurableSubscriberPolicy",
    "fileDurableSubscriberCursor",
    "storeDurableSubscriberCursor",
    "vmDurableCursor",
    "pendingQueuePolicy",
    "fileQueueCursor",
    "storeCursor",
    "vmQueueCursor",
    "pendingSubscriberPolicy",
    "fileCursor",
    "vmCursor",
    "slowConsumerStrategy",
    "abortSlowAckConsumerStrategy",
    "abortSlowConsumerStrategy",
    "subscriptionRecoveryPolicy",
    "fixedCountSubscriptionRecoveryPolicy",
    "fixedSizedSubscriptionRecoveryPolicy",
    "lastImageSubscriptionRecoveryPolicy",
    "noSubscriptionRecoveryPolicy",
    "queryBasedSubscriptionRecoveryPolicy",
    "retainedMessageSubscriptionRecoveryPolicy",
    "timedSubscriptionRecoveryPolicy",
    "wrapped",
    "destination",
    // destinations, interceptors, composite and virtual destinations
    "destinations",
    "queue",
    "topic",
    "tempQueue",
    "tempTopic",
    "destinationInterceptors",
    "mirroredQueue",
    "virtualDestinationInterceptor",
    "virtualDestinations",
    "virtualTopic",
    "compositeQueue",
    "compositeTopic",
    "forwardTo",
    "filteredDestination",
    // network of brokers
    "networkConnectors",
    "networkConnector",
    "dynamicallyIncludedDestinations",
    "excludedDestinations",
    "staticallyIncludedDestinations",
    "durableDestinations",
    // plugins
    "discardingDLQBrokerPlugin",
    "forcePersistencyModeBrokerPlugin",
    "timeStampingBrokerPlugin",
    "redeliveryPlugin",
    "redeliveryPolicyMap",
    "redeliveryPolicyEntries",
    "redeliveryPolicy",
    // authorization
    "authorizationMap",
    "authorizationEntries",
    "authorizationEntry",
    "tempDestinationAuthorizationEntry",
];

/// A transport connector Berth opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connector {
    pub name: String,
    pub uri: String,
}

/// The SSL context of the TLS connectors: a PKCS#12 keystore.
#[derive(Clone, PartialEq, Eq)]
pub struct SslContext {
    pub keystore: PathBuf,
    pub password: String,
}

impl std::fmt::Debug for SslContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SslContext")
            .field("keystore", &self.keystore)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Berth's inputs for the rendered file.
#[derive(Debug, Clone)]
pub struct BrokerParams<'a> {
    pub broker_name: &'a str,
    pub data_dir: &'a Path,
    pub connectors: Vec<Connector>,
    pub ssl: Option<SslContext>,
    /// `storeUsage` limit, ActiveMQ syntax (e.g. `8 gb`).
    pub store_limit: &'a str,
    /// `tempUsage` limit.
    pub temp_limit: &'a str,
    /// The tenant's configuration revision, if any.
    pub tenant: Option<&'a str>,
}

/// The rendered file, and what of the revision was left out (names only).
#[derive(Debug, Clone)]
pub struct Rendered {
    pub xml: String,
    pub dropped: Vec<String>,
}

/// The revision could not be used at all.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// roxmltree's message names a position, never content.
    #[error("the configuration revision is not well-formed XML: {0}")]
    Xml(String),
    #[error("the configuration revision has no <broker> element")]
    NoBroker,
}

/// A small element tree, written out with quick-xml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct El {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<El>,
}

impl El {
    pub fn new(name: &str) -> El {
        El {
            name: name.to_string(),
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    pub fn attr(mut self, key: &str, value: impl Into<String>) -> El {
        self.set_attr(key, value);
        self
    }

    /// Set `key` (replacing an earlier value, keeping its position).
    pub fn set_attr(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        match self.attrs.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.attrs.push((key.to_string(), value)),
        }
    }

    pub fn child(mut self, child: El) -> El {
        self.children.push(child);
        self
    }

    pub fn children(mut self, children: impl IntoIterator<Item = El>) -> El {
        self.children.extend(children);
        self
    }

    fn write<W: std::io::Write>(&self, w: &mut Writer<W>) -> std::io::Result<()> {
        let start = BytesStart::new(self.name.as_str())
            .with_attributes(self.attrs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if self.children.is_empty() {
            w.write_event(Event::Empty(start))
        } else {
            w.write_event(Event::Start(start))?;
            for c in &self.children {
                c.write(w)?;
            }
            w.write_event(Event::End(BytesEnd::new(self.name.as_str())))
        }
    }
}

/// What the agent takes from a revision.
#[derive(Debug, Default)]
struct Tenant {
    broker_attrs: Vec<(String, String)>,
    destination_interceptors: Option<El>,
    destination_policy: Option<El>,
    destinations: Option<El>,
    network_connectors: Option<El>,
    plugins: Vec<El>,
    authorization_map: Option<El>,
    dropped: Vec<String>,
}

fn may_hold_expressions(value: &str) -> bool {
    value.contains("${") || value.contains("#{")
}

fn in_core_ns(node: roxmltree::Node) -> bool {
    matches!(node.tag_name().namespace(), None | Some(CORE_NS))
}

/// Copy `node` and its subtree, keeping only what [`ALLOWED_ELEMENTS`] and the value
/// rules allow.
fn copy_element(node: roxmltree::Node, dropped: &mut Vec<String>) -> Option<El> {
    let name = node.tag_name().name();
    if !in_core_ns(node) {
        dropped.push(format!("element <{name}> (not in the ActiveMQ namespace)"));
        return None;
    }
    if !ALLOWED_ELEMENTS.contains(&name) {
        dropped.push(format!("element <{name}> (not allowed)"));
        return None;
    }
    let mut el = El::new(name);
    for a in node.attributes() {
        if a.namespace().is_some() {
            dropped.push(format!("attribute {} of <{name}> (namespaced)", a.name()));
        } else if may_hold_expressions(a.value()) {
            dropped.push(format!(
                "attribute {} of <{name}> (placeholders and expressions are not allowed)",
                a.name()
            ));
        } else {
            el.attrs.push((a.name().to_string(), a.value().to_string()));
        }
    }
    for c in node.children() {
        if c.is_element() {
            if let Some(copied) = copy_element(c, dropped) {
                el.children.push(copied);
            }
        } else if c.is_text() && !c.text().unwrap_or("").trim().is_empty() {
            dropped.push(format!("text inside <{name}>"));
        }
    }
    Some(el)
}

fn element_children<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    node.children().filter(|c| c.is_element())
}

fn child_named<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
    name: &str,
) -> Option<roxmltree::Node<'a, 'i>> {
    element_children(node).find(|c| c.tag_name().name() == name && in_core_ns(*c))
}

fn parse_tenant(text: &str) -> Result<Tenant, ConfigError> {
    let doc = roxmltree::Document::parse(text).map_err(|e| ConfigError::Xml(e.to_string()))?;
    let root = doc.root_element();
    let broker = if root.tag_name().name() == "broker" {
        root
    } else {
        element_children(root)
            .find(|c| c.tag_name().name() == "broker")
            .ok_or(ConfigError::NoBroker)?
    };
    let mut t = Tenant::default();
    for a in broker.attributes() {
        if a.namespace().is_some() {
            continue; // xsi:… and the like: not broker settings
        }
        if !BROKER_ATTRIBUTES.contains(&a.name()) {
            t.dropped.push(format!(
                "broker attribute {} (Berth's or not allowed)",
                a.name()
            ));
        } else if may_hold_expressions(a.value()) {
            t.dropped.push(format!(
                "broker attribute {} (placeholders and expressions are not allowed)",
                a.name()
            ));
        } else {
            t.broker_attrs
                .push((a.name().to_string(), a.value().to_string()));
        }
    }
    for child in element_children(broker) {
        let name = child.tag_name().name();
        if !in_core_ns(child) {
            t.dropped
                .push(format!("element <{name}> (not in the ActiveMQ namespace)"));
            continue;
        }
        match name {
            "destinationInterceptors" => {
                t.destination_interceptors = copy_element(child, &mut t.dropped)
            }
            "destinationPolicy" => t.destination_policy = copy_element(child, &mut t.dropped),
            "destinations" => t.destinations = copy_element(child, &mut t.dropped),
            "networkConnectors" => t.network_connectors = copy_element(child, &mut t.dropped),
            "plugins" => {
                for plugin in element_children(child) {
                    let pname = plugin.tag_name().name();
                    if pname == "authorizationPlugin" && in_core_ns(plugin) {
                        let map = child_named(plugin, "map")
                            .and_then(|m| child_named(m, "authorizationMap"));
                        match map {
                            Some(map) => t.authorization_map = copy_element(map, &mut t.dropped),
                            None => t.dropped.push(
                                "element <authorizationPlugin> without map/authorizationMap".into(),
                            ),
                        }
                    } else if pname == "statisticsBrokerPlugin" {
                        // Berth always has one.
                    } else if TENANT_PLUGINS.contains(&pname) && in_core_ns(plugin) {
                        if let Some(p) = copy_element(plugin, &mut t.dropped) {
                            t.plugins.push(p);
                        }
                    } else {
                        t.dropped
                            .push(format!("plugin <{pname}> (Berth's or not allowed)"));
                    }
                }
            }
            other => t.dropped.push(format!(
                "element <{other}> (managed by Berth or not allowed)"
            )),
        }
    }
    Ok(t)
}

/// Berth's default destination policy: an individual DLQ per destination.
pub fn default_destination_policy() -> El {
    El::new("destinationPolicy").child(
        El::new("policyMap").child(
            El::new("policyEntries").children([
                El::new("policyEntry").attr("queue", ">").child(
                    El::new("deadLetterStrategy").child(
                        El::new("individualDeadLetterStrategy")
                            .attr("queuePrefix", "DLQ.")
                            .attr("useQueueForQueueMessages", "true")
                            .attr("processExpired", "false"),
                    ),
                ),
                El::new("policyEntry")
                    .attr("topic", ">")
                    .child(
                        El::new("deadLetterStrategy").child(
                            El::new("individualDeadLetterStrategy")
                                .attr("queuePrefix", "DLQ.")
                                .attr("useQueueForTopicMessages", "true"),
                        ),
                    )
                    .child(El::new("pendingMessageLimitStrategy").child(
                        El::new("constantPendingMessageLimitStrategy").attr("limit", "3000"),
                    )),
            ]),
        ),
    )
}

/// Berth's default broker-side redelivery: 6 redeliveries, 1 s doubling, then the DLQ.
pub fn default_redelivery_plugin() -> El {
    El::new("redeliveryPlugin")
        .attr("fallbackToDeadLetter", "true")
        .attr("sendToDlqIfMaxRetriesExceeded", "true")
        .child(
            El::new("redeliveryPolicyMap").child(
                El::new("redeliveryPolicyMap").child(
                    El::new("defaultEntry").child(
                        El::new("redeliveryPolicy")
                            .attr("maximumRedeliveries", "6")
                            .attr("initialRedeliveryDelay", "1000")
                            .attr("redeliveryDelay", "1000")
                            .attr("backOffMultiplier", "2")
                            .attr("useExponentialBackOff", "true"),
                    ),
                ),
            ),
        )
}

fn everyone_entry(name: &str) -> El {
    El::new(name)
        .attr("read", "*")
        .attr("write", "*")
        .attr("admin", "*")
}

/// The authorization plugin: Berth's entries, then the tenant's map.
fn authorization_plugin(tenant_map: &El) -> El {
    let admins = |kind: &str| {
        El::new("authorizationEntry")
            .attr(kind, ">")
            .attr("read", ADMINS_GROUP)
            .attr("write", ADMINS_GROUP)
            .attr("admin", ADMINS_GROUP)
    };
    let mut entries = El::new("authorizationEntries").children([
        admins("queue"),
        admins("topic"),
        everyone_entry("authorizationEntry").attr("topic", "ActiveMQ.Advisory.>"),
    ]);
    let mut map = El::new("authorizationMap");
    map.attrs = tenant_map.attrs.clone();
    let mut others = Vec::new();
    for c in &tenant_map.children {
        if c.name == "authorizationEntries" {
            entries.children.extend(c.children.iter().cloned());
        } else {
            others.push(c.clone());
        }
    }
    let tenant_temp = others
        .iter()
        .any(|c| c.name == "tempDestinationAuthorizationEntry");
    map.children.push(entries);
    map.children.extend(others);
    if !tenant_temp {
        map.children.push(
            El::new("tempDestinationAuthorizationEntry")
                .child(everyone_entry("tempDestinationAuthorizationEntry")),
        );
    }
    El::new("authorizationPlugin").child(El::new("map").child(map))
}

fn is_false(v: &str) -> bool {
    v.trim().eq_ignore_ascii_case("false")
}

/// Render the complete activemq.xml. See the module docs.
pub fn render_activemq_xml(p: &BrokerParams<'_>) -> Result<Rendered, ConfigError> {
    let tenant = match p.tenant.filter(|t| !t.trim().is_empty()) {
        Some(text) => parse_tenant(text)?,
        None => Tenant::default(),
    };
    let data = p.data_dir.display().to_string();

    let mut broker = El::new("broker")
        .attr("xmlns", CORE_NS)
        .attr("brokerName", p.broker_name)
        .attr("dataDirectory", data.clone())
        .attr("useJmx", "false")
        .attr("persistent", "true")
        .attr("schedulerSupport", "true");
    for (k, v) in &tenant.broker_attrs {
        broker.set_attr(k, v.clone());
    }
    let scheduler = broker
        .attrs
        .iter()
        .find(|(k, _)| k == "schedulerSupport")
        .is_none_or(|(_, v)| !is_false(v));

    if let Some(e) = tenant.destination_interceptors.clone() {
        broker.children.push(e);
    }
    broker.children.push(
        tenant
            .destination_policy
            .clone()
            .unwrap_or_else(default_destination_policy),
    );
    if let Some(e) = tenant.destinations.clone() {
        broker.children.push(e);
    }
    if let Some(e) = tenant.network_connectors.clone() {
        broker.children.push(e);
    }
    broker.children.push(
        El::new("persistenceAdapter").child(
            El::new("kahaDB")
                .attr("directory", format!("{data}/kahadb"))
                .attr("lockKeepAlivePeriod", "0")
                .attr("checkpointInterval", CHECKPOINT_INTERVAL_MS)
                .child(
                    El::new("locker").child(
                        El::new("shared-file-locker")
                            .attr("lockAcquireSleepInterval", LOCK_ACQUIRE_SLEEP_MS),
                    ),
                ),
        ),
    );

    let mut plugins = El::new("plugins").children([
        El::new("statisticsBrokerPlugin"),
        El::new("jaasAuthenticationPlugin").attr("configuration", JAAS_CONFIGURATION),
    ]);
    if let Some(map) = &tenant.authorization_map {
        plugins.children.push(authorization_plugin(map));
    }
    let tenant_redelivery = tenant.plugins.iter().any(|p| p.name == "redeliveryPlugin");
    if !tenant_redelivery && scheduler {
        plugins.children.push(default_redelivery_plugin());
    }
    plugins.children.extend(tenant.plugins.iter().cloned());
    broker.children.push(plugins);

    if let Some(ssl) = &p.ssl {
        broker.children.push(
            El::new("sslContext").child(
                El::new("sslContext")
                    .attr("keyStore", format!("file:{}", ssl.keystore.display()))
                    .attr("keyStorePassword", ssl.password.clone())
                    .attr("keyStoreType", "PKCS12"),
            ),
        );
    }
    broker.children.push(
        El::new("systemUsage").child(El::new("systemUsage").children([
            El::new("memoryUsage").child(El::new("memoryUsage").attr("percentOfJvmHeap", "70")),
            El::new("storeUsage").child(El::new("storeUsage").attr("limit", p.store_limit)),
            El::new("tempUsage").child(El::new("tempUsage").attr("limit", p.temp_limit)),
        ])),
    );
    broker.children.push(
        El::new("transportConnectors").children(p.connectors.iter().map(|c| {
            El::new("transportConnector")
                .attr("name", c.name.clone())
                .attr("uri", c.uri.clone())
        })),
    );

    let beans = El::new("beans")
        .attr("xmlns", BEANS_NS)
        .attr("xmlns:xsi", XSI_NS)
        .attr("xsi:schemaLocation", SCHEMA_LOCATION)
        .child(broker);

    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    let written = (|| -> std::io::Result<()> {
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        w.write_event(Event::Comment(BytesText::new(
            " Written by the Berth broker agent at every engine start; edits are lost. ",
        )))?;
        beans.write(&mut w)
    })();
    written.expect("writing XML into a Vec cannot fail");
    let mut xml = String::from_utf8(w.into_inner()).expect("quick-xml writes UTF-8");
    xml.push('\n');
    Ok(Rendered {
        xml,
        dropped: tenant.dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params<'a>(tenant: Option<&'a str>) -> BrokerParams<'a> {
        BrokerParams {
            broker_name: "b-amq1",
            data_dir: Path::new("/var/lib/activemq"),
            connectors: vec![
                Connector {
                    name: "openwire".into(),
                    uri: "tcp://0.0.0.0:61616?maximumConnections=1000&wireFormat.maxFrameSize=104857600".into(),
                },
                Connector {
                    name: "stomp".into(),
                    uri: "stomp://0.0.0.0:61613".into(),
                },
            ],
            ssl: None,
            store_limit: "8 gb",
            temp_limit: "2 gb",
            tenant,
        }
    }

    fn render(tenant: Option<&str>) -> Rendered {
        render_activemq_xml(&params(tenant)).unwrap()
    }

    /// Parse the rendered file back and run `f` on its `<broker>`.
    fn with_broker<R>(xml: &str, f: impl FnOnce(roxmltree::Node) -> R) -> R {
        let doc = roxmltree::Document::parse(xml).unwrap();
        let beans = doc.root_element();
        assert_eq!(beans.tag_name().name(), "beans");
        assert_eq!(beans.tag_name().namespace(), Some(BEANS_NS));
        let broker = element_children(beans).next().unwrap();
        assert_eq!(broker.tag_name().name(), "broker");
        assert_eq!(broker.tag_name().namespace(), Some(CORE_NS));
        f(broker)
    }

    fn find<'a, 'i>(node: roxmltree::Node<'a, 'i>, path: &[&str]) -> Vec<roxmltree::Node<'a, 'i>> {
        let mut current = vec![node];
        for step in path {
            current = current
                .into_iter()
                .flat_map(|n| element_children(n).filter(|c| c.tag_name().name() == *step))
                .collect();
        }
        current
    }

    fn child_names(node: roxmltree::Node) -> Vec<String> {
        element_children(node)
            .map(|c| c.tag_name().name().to_string())
            .collect()
    }

    #[test]
    fn berth_parts_without_a_revision() {
        let r = render(None);
        assert!(r.dropped.is_empty());
        with_broker(&r.xml, |b| {
            assert_eq!(b.attribute("brokerName"), Some("b-amq1"));
            assert_eq!(b.attribute("dataDirectory"), Some("/var/lib/activemq"));
            assert_eq!(b.attribute("useJmx"), Some("false"));
            assert_eq!(b.attribute("persistent"), Some("true"));
            assert_eq!(b.attribute("schedulerSupport"), Some("true"));
            assert_eq!(
                child_names(b),
                [
                    "destinationPolicy",
                    "persistenceAdapter",
                    "plugins",
                    "systemUsage",
                    "transportConnectors"
                ]
            );
            let kaha = &find(b, &["persistenceAdapter", "kahaDB"])[0];
            assert_eq!(
                kaha.attribute("directory"),
                Some("/var/lib/activemq/kahadb")
            );
            assert_eq!(kaha.attribute("lockKeepAlivePeriod"), Some("0"));
            assert_eq!(
                kaha.attribute("checkpointInterval"),
                Some(CHECKPOINT_INTERVAL_MS)
            );
            let locker = &find(
                b,
                &[
                    "persistenceAdapter",
                    "kahaDB",
                    "locker",
                    "shared-file-locker",
                ],
            )[0];
            assert_eq!(
                locker.attribute("lockAcquireSleepInterval"),
                Some(LOCK_ACQUIRE_SLEEP_MS)
            );
            // plugins: stats, JAAS, redelivery; no authorization without a map
            let plugins = &find(b, &["plugins"])[0];
            assert_eq!(
                child_names(*plugins),
                [
                    "statisticsBrokerPlugin",
                    "jaasAuthenticationPlugin",
                    "redeliveryPlugin"
                ]
            );
            let jaas = &find(b, &["plugins", "jaasAuthenticationPlugin"])[0];
            assert_eq!(jaas.attribute("configuration"), Some("activemq"));
            let policy = &find(
                b,
                &[
                    "plugins",
                    "redeliveryPlugin",
                    "redeliveryPolicyMap",
                    "redeliveryPolicyMap",
                    "defaultEntry",
                    "redeliveryPolicy",
                ],
            )[0];
            assert_eq!(policy.attribute("maximumRedeliveries"), Some("6"));
            assert_eq!(policy.attribute("initialRedeliveryDelay"), Some("1000"));
            assert_eq!(policy.attribute("redeliveryDelay"), Some("1000"));
            assert_eq!(policy.attribute("useExponentialBackOff"), Some("true"));
            // individual DLQ per queue
            let entries = find(
                b,
                &[
                    "destinationPolicy",
                    "policyMap",
                    "policyEntries",
                    "policyEntry",
                ],
            );
            let queue = entries
                .iter()
                .find(|e| e.attribute("queue") == Some(">"))
                .unwrap();
            let dlq = &find(
                *queue,
                &["deadLetterStrategy", "individualDeadLetterStrategy"],
            )[0];
            assert_eq!(dlq.attribute("queuePrefix"), Some("DLQ."));
            assert_eq!(dlq.attribute("useQueueForQueueMessages"), Some("true"));
            // memory from the heap; explicit store and temp limits
            let usage = &find(b, &["systemUsage", "systemUsage"])[0];
            assert_eq!(
                find(*usage, &["memoryUsage", "memoryUsage"])[0].attribute("percentOfJvmHeap"),
                Some("70")
            );
            assert_eq!(
                find(*usage, &["storeUsage", "storeUsage"])[0].attribute("limit"),
                Some("8 gb")
            );
            assert_eq!(
                find(*usage, &["tempUsage", "tempUsage"])[0].attribute("limit"),
                Some("2 gb")
            );
            // connectors, with the & in the URI escaped and read back intact
            let connectors = find(b, &["transportConnectors", "transportConnector"]);
            assert_eq!(connectors.len(), 2);
            assert_eq!(
                connectors[0].attribute("uri"),
                Some(
                    "tcp://0.0.0.0:61616?maximumConnections=1000&wireFormat.maxFrameSize=104857600"
                )
            );
            assert!(find(b, &["sslContext"]).is_empty());
        });
        assert!(r.xml.contains("&amp;wireFormat"));
    }

    #[test]
    fn ssl_context_points_at_the_keystore() {
        let mut p = params(None);
        p.ssl = Some(SslContext {
            keystore: "/etc/activemq/instances-enabled/berth/broker.p12".into(),
            password: "pw\"<&>".into(),
        });
        let r = render_activemq_xml(&p).unwrap();
        with_broker(&r.xml, |b| {
            let ssl = &find(b, &["sslContext", "sslContext"])[0];
            assert_eq!(
                ssl.attribute("keyStore"),
                Some("file:/etc/activemq/instances-enabled/berth/broker.p12")
            );
            assert_eq!(ssl.attribute("keyStorePassword"), Some("pw\"<&>"));
            assert_eq!(ssl.attribute("keyStoreType"), Some("PKCS12"));
        });
        assert!(format!("{:?}", p.ssl).contains("redacted"));
    }

    const TENANT: &str = r##"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<broker xmlns="http://activemq.apache.org/schema/core"
        schedulePeriodForDestinationPurge="10000" advisorySupport="false"
        brokerName="evil" dataDirectory="/tmp" useJmx="true">
  <destinationPolicy>
    <policyMap>
      <policyEntries>
        <policyEntry queue=">" gcInactiveDestinations="true" inactiveTimoutBeforeGC="600000">
          <deadLetterStrategy>
            <sharedDeadLetterStrategy processExpired="false"/>
          </deadLetterStrategy>
        </policyEntry>
      </policyEntries>
    </policyMap>
  </destinationPolicy>
  <destinations>
    <queue physicalName="orders"/>
    <topic physicalName="events"/>
  </destinations>
  <plugins>
    <timeStampingBrokerPlugin zeroExpirationOverride="86400000"/>
    <redeliveryPlugin fallbackToDeadLetter="true" sendToDlqIfMaxRetriesExceeded="true">
      <redeliveryPolicyMap>
        <redeliveryPolicyMap>
          <defaultEntry>
            <redeliveryPolicy maximumRedeliveries="1" initialRedeliveryDelay="1000" redeliveryDelay="1000"/>
          </defaultEntry>
        </redeliveryPolicyMap>
      </redeliveryPolicyMap>
    </redeliveryPlugin>
    <authorizationPlugin>
      <map>
        <authorizationMap>
          <authorizationEntries>
            <authorizationEntry queue="orders.>" read="apps" write="apps" admin="apps"/>
            <authorizationEntry topic="events.>" read="readers" write="apps" admin="apps"/>
          </authorizationEntries>
        </authorizationMap>
      </map>
    </authorizationPlugin>
    <simpleAuthenticationPlugin>
      <users><authenticationUser username="x" password="y" groups="admins"/></users>
    </simpleAuthenticationPlugin>
  </plugins>
  <transportConnectors>
    <transportConnector name="evil" uri="tcp://0.0.0.0:1"/>
  </transportConnectors>
  <systemUsage><systemUsage><memoryUsage><memoryUsage limit="64 gb"/></memoryUsage></systemUsage></systemUsage>
</broker>"##;

    #[test]
    fn revision_is_merged() {
        let r = render(Some(TENANT));
        with_broker(&r.xml, |b| {
            // allowed attributes taken, Berth's kept
            assert_eq!(
                b.attribute("schedulePeriodForDestinationPurge"),
                Some("10000")
            );
            assert_eq!(b.attribute("advisorySupport"), Some("false"));
            assert_eq!(b.attribute("brokerName"), Some("b-amq1"));
            assert_eq!(b.attribute("dataDirectory"), Some("/var/lib/activemq"));
            assert_eq!(b.attribute("useJmx"), Some("false"));
            // the tenant's destination policy replaces Berth's default
            let entries = find(
                b,
                &[
                    "destinationPolicy",
                    "policyMap",
                    "policyEntries",
                    "policyEntry",
                ],
            );
            assert_eq!(entries.len(), 1);
            assert_eq!(entries[0].attribute("gcInactiveDestinations"), Some("true"));
            assert_eq!(
                find(
                    entries[0],
                    &["deadLetterStrategy", "sharedDeadLetterStrategy"]
                )
                .len(),
                1
            );
            assert_eq!(
                find(b, &["destinations", "queue"])[0].attribute("physicalName"),
                Some("orders")
            );
            // plugins: Berth's, then authorization, then the tenant's (its redelivery
            // replaces Berth's default; simpleAuthenticationPlugin is dropped)
            let plugins = &find(b, &["plugins"])[0];
            assert_eq!(
                child_names(*plugins),
                [
                    "statisticsBrokerPlugin",
                    "jaasAuthenticationPlugin",
                    "authorizationPlugin",
                    "timeStampingBrokerPlugin",
                    "redeliveryPlugin"
                ]
            );
            let policy = find(
                *plugins,
                &[
                    "redeliveryPlugin",
                    "redeliveryPolicyMap",
                    "redeliveryPolicyMap",
                    "defaultEntry",
                    "redeliveryPolicy",
                ],
            );
            assert_eq!(policy.len(), 1);
            assert_eq!(policy[0].attribute("maximumRedeliveries"), Some("1"));
            // Berth's connectors and system usage only
            let connectors = find(b, &["transportConnectors", "transportConnector"]);
            assert_eq!(connectors.len(), 2);
            assert!(connectors
                .iter()
                .all(|c| c.attribute("name") != Some("evil")));
            assert_eq!(
                find(
                    b,
                    &["systemUsage", "systemUsage", "memoryUsage", "memoryUsage"]
                )[0]
                .attribute("limit"),
                None
            );
        });
        let dropped = r.dropped.join("; ");
        for what in [
            "brokerName",
            "dataDirectory",
            "useJmx",
            "simpleAuthenticationPlugin",
            "transportConnectors",
            "systemUsage",
        ] {
            assert!(dropped.contains(what), "{what} not reported: {dropped}");
        }
        assert!(!r.xml.contains("evil"));
        assert!(!r.xml.contains("64 gb"));
    }

    #[test]
    fn authorization_map_gets_berths_entries() {
        let r = render(Some(TENANT));
        with_broker(&r.xml, |b| {
            let map = &find(
                b,
                &["plugins", "authorizationPlugin", "map", "authorizationMap"],
            )[0];
            let entries = find(*map, &["authorizationEntries", "authorizationEntry"]);
            let summary: Vec<[Option<&str>; 5]> = entries
                .iter()
                .map(|e| ["queue", "topic", "read", "write", "admin"].map(|a| e.attribute(a)))
                .collect();
            assert_eq!(
                summary,
                [
                    [
                        Some(">"),
                        None,
                        Some("admins"),
                        Some("admins"),
                        Some("admins")
                    ],
                    [
                        None,
                        Some(">"),
                        Some("admins"),
                        Some("admins"),
                        Some("admins")
                    ],
                    [
                        None,
                        Some("ActiveMQ.Advisory.>"),
                        Some("*"),
                        Some("*"),
                        Some("*")
                    ],
                    [
                        Some("orders.>"),
                        None,
                        Some("apps"),
                        Some("apps"),
                        Some("apps")
                    ],
                    [
                        None,
                        Some("events.>"),
                        Some("readers"),
                        Some("apps"),
                        Some("apps")
                    ],
                ]
            );
            let temp = find(
                *map,
                &[
                    "tempDestinationAuthorizationEntry",
                    "tempDestinationAuthorizationEntry",
                ],
            );
            assert_eq!(temp.len(), 1);
            assert_eq!(temp[0].attribute("write"), Some("*"));
        });
    }

    #[test]
    fn tenant_temp_destination_entry_replaces_berths() {
        let tenant = r##"<broker xmlns="http://activemq.apache.org/schema/core"><plugins><authorizationPlugin><map>
            <authorizationMap>
              <authorizationEntries/>
              <tempDestinationAuthorizationEntry>
                <tempDestinationAuthorizationEntry read="tmp" write="tmp" admin="tmp"/>
              </tempDestinationAuthorizationEntry>
            </authorizationMap></map></authorizationPlugin></plugins></broker>"##;
        let r = render(Some(tenant));
        with_broker(&r.xml, |b| {
            let map = &find(
                b,
                &["plugins", "authorizationPlugin", "map", "authorizationMap"],
            )[0];
            let temp = find(
                *map,
                &[
                    "tempDestinationAuthorizationEntry",
                    "tempDestinationAuthorizationEntry",
                ],
            );
            assert_eq!(temp.len(), 1);
            assert_eq!(temp[0].attribute("read"), Some("tmp"));
            // Berth's three entries are there even with an empty tenant list
            assert_eq!(
                find(*map, &["authorizationEntries", "authorizationEntry"]).len(),
                3
            );
        });
    }

    #[test]
    fn expressions_foreign_namespaces_and_beans_are_dropped() {
        let tenant = r##"<beans xmlns="http://www.springframework.org/schema/beans">
          <broker xmlns="http://activemq.apache.org/schema/core"
                  xmlns:b="http://www.springframework.org/schema/beans"
                  schedulePeriodForDestinationPurge="#{T(java.lang.Runtime).getRuntime().exec('id')}"
                  offlineDurableSubscriberTimeout="${java.home}">
            <destinations>
              <queue physicalName="ok"/>
              <queue physicalName="#{1+1}"/>
              <b:bean class="java.lang.ProcessBuilder"/>
              <bean xmlns="http://www.springframework.org/schema/beans" class="x.Y"/>
              <jdbcPersistenceAdapter/>
              some text
            </destinations>
          </broker>
        </beans>"##;
        let r = render(Some(tenant));
        assert!(!r.xml.contains("Runtime"));
        assert!(!r.xml.contains("java.home"));
        assert!(!r.xml.contains("#{"));
        assert!(!r.xml.contains("ProcessBuilder"));
        assert!(!r.xml.contains("x.Y"));
        assert!(!r.xml.contains("jdbc"));
        with_broker(&r.xml, |b| {
            let queues = find(b, &["destinations", "queue"]);
            assert_eq!(queues.len(), 2);
            assert_eq!(queues[0].attribute("physicalName"), Some("ok"));
            assert_eq!(queues[1].attribute("physicalName"), None);
            assert_eq!(
                child_names(find(b, &["destinations"])[0]),
                ["queue", "queue"]
            );
        });
        let dropped = r.dropped.join("; ");
        assert!(
            dropped.contains("schedulePeriodForDestinationPurge"),
            "{dropped}"
        );
        assert!(dropped.contains("<bean>"), "{dropped}");
        assert!(dropped.contains("jdbcPersistenceAdapter"), "{dropped}");
        assert!(dropped.contains("text inside <destinations>"), "{dropped}");
        // names only, never values
        assert!(!dropped.contains("Runtime"), "{dropped}");
    }

    #[test]
    fn hostile_values_are_escaped() {
        let tenant = r##"<broker xmlns="http://activemq.apache.org/schema/core"><destinations>
            <queue physicalName="a&quot;/&gt;&lt;bean class=&quot;x&quot;/&gt;&amp;&#10;b"/>
            </destinations></broker>"##;
        let r = render(Some(tenant));
        with_broker(&r.xml, |b| {
            let q = &find(b, &["destinations", "queue"])[0];
            assert_eq!(
                q.attribute("physicalName"),
                Some("a\"/><bean class=\"x\"/>&\nb")
            );
            assert!(find(b, &["destinations", "bean"]).is_empty());
        });
    }

    #[test]
    fn scheduler_off_drops_the_default_redelivery() {
        let tenant = r##"<broker xmlns="http://activemq.apache.org/schema/core" schedulerSupport="false"/>"##;
        let r = render(Some(tenant));
        with_broker(&r.xml, |b| {
            assert_eq!(b.attribute("schedulerSupport"), Some("false"));
            assert!(find(b, &["plugins", "redeliveryPlugin"]).is_empty());
        });
        let tenant =
            r##"<broker xmlns="http://activemq.apache.org/schema/core" persistent="false"/>"##;
        with_broker(&render(Some(tenant)).xml, |b| {
            assert_eq!(b.attribute("persistent"), Some("false"));
        });
    }

    #[test]
    fn broken_revisions_are_errors_without_content() {
        assert!(matches!(
            render_activemq_xml(&params(Some("<broker><oops></broker>"))),
            Err(ConfigError::Xml(_))
        ));
        assert!(matches!(
            render_activemq_xml(&params(Some("<beans/>"))),
            Err(ConfigError::NoBroker)
        ));
        // DTDs (and so entity expansion) are refused
        let dtd = r##"<!DOCTYPE broker [<!ENTITY x "secret-entity">]><broker>&x;</broker>"##;
        let err = render_activemq_xml(&params(Some(dtd)))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret-entity"), "{err}");
        // blank revision = none
        assert!(render_activemq_xml(&params(Some("  \n"))).is_ok());
    }
}
