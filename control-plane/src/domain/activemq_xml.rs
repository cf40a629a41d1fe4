//! Sanitization of ActiveMQ configuration revisions (`activemq.xml`-shaped XML).
//!
//! A tenant's revision is merged by the agent into the `activemq.xml` it renders, so
//! only what Amazon MQ permits survives, and nothing in it can reach outside the broker
//! (no Spring beans, imports, placeholders, expressions, bean references, local or
//! file URIs). The permitted elements, their attributes (with value types) and their
//! child collections are the tables below, taken from Amazon MQ's published schema for
//! ActiveMQ 5.17 (`amazon-mq-active-mq-5.17.6.xsd`, linked from the developer guide's
//! "Amazon MQ for ActiveMQ broker configuration parameters"; its "Elements permitted",
//! "Elements and their attributes permitted" and "child collection elements" pages are
//! renderings of the same schema). Berth is stricter than the schema in a few places,
//! listed on `ELEMENTS`.
//!
//! What is removed is reported as Amazon MQ does: `DISALLOWED_ELEMENT_REMOVED` (the
//! element's name; its subtree goes with it and gives no further warnings),
//! `DISALLOWED_ATTRIBUTE_REMOVED` and `INVALID_ATTRIBUTE_VALUE_REMOVED` (the element's
//! and the attribute's name; attributes of an element are visited in lexical order).
//! Every warning is returned; the API answers the first 20 (the caller truncates).
//!
//! What is not XML, or is XML that could make a parser reach elsewhere (a DOCTYPE, an
//! entity other than the five predefined ones), is a 400 on `data`: nothing is resolved.
//!
//! The output is the normalized revision: an XML declaration, then a
//! `<broker xmlns="http://activemq.apache.org/schema/core">` root (a Spring `<beans>`
//! wrapper is unwrapped), elements in input order, attributes sorted, two-space indent,
//! comments kept. It is deterministic and a fixed point: sanitizing it again changes
//! nothing and warns nothing.
//!
//! Some permitted elements configure what Berth renders itself; the agent must merge
//! them into its own elements rather than add them: `transportConnector` (only
//! `name="openwire"` and the cluster-client flags, never a `uri`), `persistenceAdapter`
//! / `kahaDB` (tuning attributes only, never a directory), `systemUsage`, and
//! `authorizationPlugin`.

use crate::domain::rabbitmq_conf;
use crate::error::Error;

/// Namespace of the `<broker>` element and everything in it.
pub const ACTIVEMQ_CORE_NS: &str = "http://activemq.apache.org/schema/core";
/// Namespace of a Spring `<beans>` wrapper.
const SPRING_BEANS_NS: &str = "http://www.springframework.org/schema/beans";
/// Largest revision accepted, in bytes.
pub const MAX_INPUT_BYTES: usize = 256 * 1024;
/// Deepest element nesting accepted anywhere in the document (the schema needs ~12).
const MAX_DEPTH: usize = 48;
/// Most XML nodes the parser builds.
const MAX_NODES: u32 = 100_000;
/// Longest attribute value kept.
const MAX_VALUE_CHARS: usize = 4096;

/// Why something was removed (`SanitizationWarningReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarningReason {
    DisallowedElementRemoved,
    DisallowedAttributeRemoved,
    InvalidAttributeValueRemoved,
}

impl WarningReason {
    pub fn as_wire(self) -> &'static str {
        match self {
            Self::DisallowedElementRemoved => "DISALLOWED_ELEMENT_REMOVED",
            Self::DisallowedAttributeRemoved => "DISALLOWED_ATTRIBUTE_REMOVED",
            Self::InvalidAttributeValueRemoved => "INVALID_ATTRIBUTE_VALUE_REMOVED",
        }
    }
}

/// One `SanitizationWarning`: `elementName` is the removed element, or the element
/// whose attribute `attributeName` was removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub reason: WarningReason,
    pub element_name: String,
    pub attribute_name: Option<String>,
}

impl Warning {
    fn element(name: &str) -> Self {
        Self {
            reason: WarningReason::DisallowedElementRemoved,
            element_name: name.to_owned(),
            attribute_name: None,
        }
    }

    fn attribute(reason: WarningReason, element: &str, attribute: &str) -> Self {
        Self {
            reason,
            element_name: element.to_owned(),
            attribute_name: Some(attribute.to_owned()),
        }
    }
}

/// A RabbitMQ warning in this (wider) shape, so that one caller can handle both
/// engines: its key is the `elementName`.
impl From<rabbitmq_conf::WarningReason> for WarningReason {
    fn from(r: rabbitmq_conf::WarningReason) -> Self {
        match r {
            rabbitmq_conf::WarningReason::DisallowedElementRemoved => {
                Self::DisallowedElementRemoved
            }
            rabbitmq_conf::WarningReason::InvalidAttributeValueRemoved => {
                Self::InvalidAttributeValueRemoved
            }
        }
    }
}

impl From<rabbitmq_conf::Warning> for Warning {
    fn from(w: rabbitmq_conf::Warning) -> Self {
        Self {
            reason: w.reason.into(),
            element_name: w.key,
            attribute_name: None,
        }
    }
}

/// The shape an attribute's value must have.
#[derive(Debug, Clone, Copy)]
enum Ty {
    /// `true` or `false`.
    Bool,
    /// Java `short`.
    Short,
    /// Java `int`.
    Int,
    /// Java `long`.
    Long,
    /// A finite number.
    Double,
    /// An integer in an inclusive range.
    Range(i64, i64),
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// Bytes: digits with an optional unit (`b`, `k`/`kb`, `m`/`mb`, `g`/`gb`, any case),
    /// as ActiveMQ's memory property editor reads them.
    Size,
    /// Free text (destination names, group lists, selectors).
    Str,
    /// A network connector's `uri`: `static:(…)` or `masterslave:(…)` of `tcp://` or
    /// `ssl://` brokers.
    NetworkUri,
    /// One `tcp://host:port` or `ssl://host:port`.
    TransportUri,
}

use Ty::*;

/// A child collection element (a Spring property holding one bean or a list): it has
/// no attributes, only the elements listed.
struct Collection {
    name: &'static str,
    /// At most one collection of this name in its parent, holding at most one element.
    single: bool,
    children: &'static [&'static str],
}

/// A permitted element: its attributes (sorted by name) and child collections.
struct Element {
    name: &'static str,
    attributes: &'static [(&'static str, Ty)],
    collections: &'static [Collection],
    /// Attributes without which the element is removed (Berth: a connector without its
    /// name or URI would stop the broker from starting).
    required: &'static [&'static str],
}

const DESTINATIONS: &[&str] = &["queue", "tempQueue", "tempTopic", "topic"];
const DESTINATIONS_OR_FILTERED: &[&str] = &[
    "queue",
    "tempQueue",
    "tempTopic",
    "topic",
    "filteredDestination",
];
const SUBSCRIPTION_RECOVERY_POLICIES: &[&str] = &[
    "fixedCountSubscriptionRecoveryPolicy",
    "fixedSizedSubscriptionRecoveryPolicy",
    "lastImageSubscriptionRecoveryPolicy",
    "noSubscriptionRecoveryPolicy",
    "queryBasedSubscriptionRecoveryPolicy",
    "retainedMessageSubscriptionRecoveryPolicy",
    "timedSubscriptionRecoveryPolicy",
];

/// Every permitted element, sorted by name (Amazon MQ's ActiveMQ 5.17.6 schema).
///
/// Berth departs from the schema here:
/// - `broker`: `advisorySupport`, `deleteAllMessagesOnStartup`, `persistent` and
///   `schedulerSupport` (strings in the schema) must be booleans; the usage portions are
///   percentages and the thread priorities Java's 1–10; the `systemUsage` attribute (a
///   reference to a bean) is removed; `networkConnectorStartAsync`, missing from the
///   schema but listed in the documentation's broker attributes, is kept.
/// - `networkConnector`: `uri` and `brokerURL` are checked (see [`Ty::NetworkUri`]);
///   `bridgeFactory`, `connectionFilter`, `localUri`, `objectName` (references to beans,
///   or the local end of the bridge) and the schema's free-form child collections of the
///   same names and `uri` (arbitrary beans) are removed; `prefetchSize` is an integer.
/// - `policyEntry`: `memoryLimit` must be a size, `messageGroupMapFactoryType` one of the
///   factories ActiveMQ knows.
/// - `systemUsage`/`memoryUsage`: only the `memoryUsage` element (the schema's
///   foreign-namespace wildcard is removed).
/// - `transportConnector` without `name="openwire"` and `networkConnector` without a
///   valid `uri` are removed whole (Amazon MQ answers 400 to the first).
/// - At most one entry in a single-valued collection (the schema's `maxOccurs="1"`),
///   which Amazon MQ's validation would also refuse; later ones are removed.
const ELEMENTS: &[Element] = &[
    Element {
        name: "abortSlowAckConsumerStrategy",
        attributes: &[
            ("abortConnection", Bool),
            ("checkPeriod", Long),
            ("ignoreIdleConsumers", Bool),
            ("ignoreNetworkConsumers", Bool),
            ("maxSlowCount", Long),
            ("maxSlowDuration", Long),
            ("maxTimeSinceLastAck", Long),
            ("name", Str),
        ],
        collections: &[],
        required: &[],
    },
    Element {
        name: "abortSlowConsumerStrategy",
        attributes: &[
            ("abortConnection", Bool),
            ("checkPeriod", Long),
            ("ignoreNetworkConsumers", Bool),
            ("maxSlowCount", Long),
            ("maxSlowDuration", Long),
            ("name", Str),
        ],
        collections: &[],
        required: &[],
    },
    Element {
        name: "authorizationEntry",
        attributes: &[
            ("admin", Str),
            ("queue", Str),
            ("read", Str),
            ("tempQueue", Bool),
            ("tempTopic", Bool),
            ("topic", Str),
            ("write", Str),
        ],
        collections: &[],
        required: &[],
    },
    Element {
        name: "authorizationMap",
        attributes: &[],
        collections: &[
            Collection {
                name: "authorizationEntries",
                single: false,
                children: &["authorizationEntry", "tempDestinationAuthorizationEntry"],
            },
            Collection {
                name: "defaultEntry",
                single: true,
                children: &["authorizationEntry", "tempDestinationAuthorizationEntry"],
            },
            Collection {
                name: "tempDestinationAuthorizationEntry",
                single: true,
                children: &["tempDestinationAuthorizationEntry"],
            },
        ],
        required: &[],
    },
    Element {
        name: "authorizationPlugin",
        attributes: &[],
        collections: &[Collection {
            name: "map",
            single: true,
            children: &["authorizationMap"],
        }],
        required: &[],
    },
    Element {
        name: "broker",
        attributes: &[
            ("advisorySupport", Bool),
            ("allowTempAutoCreationOnSend", Bool),
            ("anonymousProducerAdvisorySupport", Bool),
            ("cacheTempDestinations", Bool),
            ("consumerSystemUsagePortion", Range(0, 100)),
            ("dedicatedTaskRunner", Bool),
            ("deleteAllMessagesOnStartup", Bool),
            ("enableMessageExpirationOnActiveDurableSubs", Bool),
            ("keepDurableSubsActive", Bool),
            ("maxPurgedDestinationsPerSweep", Int),
            ("maxSchedulerRepeatAllowed", Int),
            ("monitorConnectionSplits", Bool),
            ("networkConnectorStartAsync", Bool),
            ("offlineDurableSubscriberTaskSchedule", Long),
            ("offlineDurableSubscriberTimeout", Long),
            ("persistenceThreadPriority", Range(1, 10)),
            ("persistent", Bool),
            ("populateJMSXUserID", Bool),
            ("producerSystemUsagePortion", Range(0, 100)),
            ("rejectDurableConsumers", Bool),
            ("rollbackOnlyOnAsyncException", Bool),
            ("schedulePeriodForDestinationPurge", Int),
            ("schedulerSupport", Bool),
            ("splitSystemUsageForProducersConsumers", Bool),
            ("taskRunnerPriority", Range(1, 10)),
            ("timeBeforePurgeTempDestinations", Int),
            ("useAuthenticatedPrincipalForJMSXUserID", Bool),
            ("useMirroredQueues", Bool),
            ("useTempMirroredQueues", Bool),
            ("useVirtualDestSubs", Bool),
            ("useVirtualDestSubsOnCreation", Bool),
            ("useVirtualTopics", Bool),
        ],
        collections: &[
            Collection {
                name: "destinationInterceptors",
                single: false,
                children: &["mirroredQueue", "virtualDestinationInterceptor"],
            },
            Collection {
                name: "destinationPolicy",
                single: true,
                children: &["policyMap"],
            },
            Collection {
                name: "destinations",
                single: false,
                children: DESTINATIONS,
            },
            Collection {
                name: "networkConnectors",
                single: false,
                children: &["networkConnector"],
            },
            Collection {
                name: "persistenceAdapter",
                single: true,
                children: &["kahaDB"],
            },
            Collection {
                name: "plugins",
                single: false,
                children: &[
                    "authorizationPlugin",
                    "discardingDLQBrokerPlugin",
                    "forcePersistencyModeBrokerPlugin",
                    "redeliveryPlugin",
                    "statisticsBrokerPlugin",
                    "timeStampingBrokerPlugin",
                ],
            },
            Collection {
                name: "systemUsage",
                single: true,
                children: &["systemUsage"],
            },
            Collection {
                name: "transportConnectors",
                single: false,
                children: &["transportConnector"],
            },
        ],
        required: &[],
    },
    Element {
        name: "cachedMessageGroupMapFactory",
        attributes: &[("cacheSize", Int)],
        collections: &[],
        required: &[],
    },
    Element {
        name: "clientIdFilterDispatchPolicy",
        attributes: &[("ptpClientId", Str), ("ptpSuffix", Str)],
        collections: &[],
        required: &[],
    },
    Element {
        name: "compositeQueue",
        attributes: &[
            ("concurrentSend", Bool),
            ("copyMessage", Bool),
            ("forwardOnly", Bool),
            ("name", Str),
            ("sendWhenNotMatched", Bool),
        ],
        collections: &[Collection {
            name: "forwardTo",
            single: false,
            children: DESTINATIONS_OR_FILTERED,
        }],
        required: &[],
    },
    Element {
        name: "compositeTopic",
        attributes: &[
            ("concurrentSend", Bool),
            ("copyMessage", Bool),
            ("forwardOnly", Bool),
            ("name", Str),
            ("sendWhenNotMatched", Bool),
        ],
        collections: &[Collection {
            name: "forwardTo",
            single: false,
            children: DESTINATIONS_OR_FILTERED,
        }],
        required: &[],
    },
    Element {
        name: "conditionalNetworkBridgeFilterFactory",
        attributes: &[
            ("rateDuration", Int),
            ("rateLimit", Int),
            ("replayDelay", Int),
            ("replayWhenNoConsumers", Bool),
            ("selectorAware", Bool),
        ],
        collections: &[],
        required: &[],
    },
    Element {
        name: "constantPendingMessageLimitStrategy",
        attributes: &[("limit", Int)],
        collections: &[],
        required: &[],
    },
    Element {
        name: "discarding",
        attributes: &[
            ("deadLetterQueue", Str),
            ("enableAudit", Bool),
            ("expiration", Long),
            ("maxAuditDepth", Int),
            ("maxProducersToAudit", Int),
            ("processExpired", Bool),
            ("processNonPersistent", Bool),
        ],
        collections: &[],
        required: &[],
    },
    Element {
        name: "discardingDLQBrokerPlugin",
        attributes: &[
            ("dropAll", Bool),
            ("dropOnly", Str),
            ("dropTemporaryQueues", Bool),
            ("dropTemporaryTopics", Bool),
            ("reportInterval", Int),
        ],
        collections: &[],
        required: &[],
    },
    Element {
        name: "fileCursor",
        attributes: &[],
        collections: &[],
        required: &[],
    },
    Element {
        name: "fileDurableSubscriberCursor",
        attributes: &[],
        collections: &[],
        required: &[],
    },
    Element {
        name: "fileQueueCursor",
        attributes: &[],
        collections: &[],
        required: &[],
    },
    Element {
        name: "filteredDestination",
        attributes: &[("queue", Str), ("selector", Str), ("topic", Str)],
        collections: &[],
        required: &[],
    },
    Element {
        name: "fixedCountSubscriptionRecoveryPolicy",
        attributes: &[("maximumSize", Int)],
        collections: &[],
        required: &[],
    },
    Element {
        name: "fixedSizedSubscriptionRecoveryPolicy",
        attributes: &[("maximumSize", Int), ("useSharedBuffer", Bool)],
        collections: &[],
        required: &[],
    },
    Element {
        name: "forcePersistencyModeBrokerPlugin",
        attributes: &[("persistenceFlag", Bool)],
        collections: &[],
        required: &[],
    },
    Element {
        name: "individualDeadLetterStrategy",
        attributes: &[
            ("destinationPerDurableSubscriber", Bool),
            ("enableAudit", Bool),
            ("expiration", Long),
            ("maxAuditDepth", Int),
            ("maxProducersToAudit", Int),
            ("processExpired", Bool),
            ("processNonPersistent", Bool),
            ("queuePrefix", Str),
            ("queueSuffix", Str),
            ("topicPrefix", Str),
            ("topicSuffix", Str),
            ("useQueueForQueueMessages", Bool),
            ("useQueueForTopicMessages", Bool),
        ],
        collections: &[],
        required: &[],
    },
    Element {
        name: "kahaDB",
        attributes: &[
            ("checkpointInterval", Range(5000, 25000)),
            ("cleanupOnStop", Bool),
            ("concurrentStoreAndDispatchQueues", Bool),
            ("indexWriteBatchSize", Range(1000, 3000)),
            ("journalDiskSyncInterval", Long),
            (
                "journalDiskSyncStrategy",
                OneOf(&["always", "periodic", "never"]),
            ),
            (
                "preallocationStrategy",
                OneOf(&["sparse_file", "os_kernel_copy", "zeros"]),
            ),
        ],
        collections: &[],
        required: &[],
    },
    Element {
        name: "lastImageSubscriptionRecoveryPolicy",
        attributes: &[],
        collections: &[],
        required: &[],
    },
    Element {
        name: "memoryUsage",
        attributes: &[("percentOfJvmHeap", Range(0, 70))],
        collections: &[],
        required: &[],
    },
    Element {
        name: "messageGroupHashBucketFactory",
        attributes: &[("bucketCount", Int), ("cacheSize", Int)],
        collections: &[],
        required: &[],
    },
    Element {
        name: "mirroredQueue",
        attributes: &[("copyMessage", Bool), ("postfix", Str), ("prefix", Str)],
        collections: &[],
        required: &[],
    },
    Element {
        name: "networkConnector",
        attributes: &[
            ("advisoryAckPercentage", Int),
            ("advisoryForFailedForward", Bool),
            ("advisoryPrefetchSize", Int),
            ("alwaysSyncSend", Bool),
            ("bridgeTempDestinations", Bool),
            ("brokerName", Str),
            ("brokerURL", TransportUri),
            ("checkDuplicateMessagesOnDuplex", Bool),
            ("clientIdToken", Str),
            ("conduitNetworkQueueSubscriptions", Bool),
            ("conduitSubscriptions", Bool),
            ("consumerPriorityBase", Int),
            ("consumerTTL", Int),
            ("decreaseNetworkConsumerPriority", Bool),
            ("destinationFilter", Str),
            ("dispatchAsync", Bool),
            ("duplex", Bool),
            ("dynamicOnly", Bool),
            ("gcDestinationViews", Bool),
            ("gcSweepTime", Long),
            ("messageTTL", Int),
            ("name", Str),
            ("networkTTL", Int),
            ("prefetchSize", Int),
            ("staticBridge", Bool),
            ("suppressDuplicateQueueSubscriptions", Bool),
            ("suppressDuplicateTopicSubscriptions", Bool),
            ("syncDurableSubs", Bool),
            ("uri", NetworkUri),
            ("useBrokerNameAsIdSees", Bool),
            ("useCompression", Bool),
            ("useVirtualDestSubs", Bool),
            ("userName", Str),
        ],
        collections: &[
            Collection {
                name: "durableDestinations",
                single: false,
                children: DESTINATIONS_OR_FILTERED,
            },
            Collection {
                name: "dynamicallyIncludedDestinations",
                single: false,
                children: DESTINATIONS_OR_FILTERED,
            },
            Collection {
                name: "excludedDestinations",
                single: false,
                children: DESTINATIONS_OR_FILTERED,
            },
            Collection {
                name: "staticallyIncludedDestinations",
                single: false,
                children: DESTINATIONS_OR_FILTERED,
            },
        ],
        required: &["uri"],
    },
    Element {
        name: "noSubscriptionRecoveryPolicy",
        attributes: &[],
        collections: &[],
        required: &[],
    },
    Element {
        name: "oldestMessageEvictionStrategy",
        attributes: &[("evictExpiredMessagesHighWatermark", Int)],
        collections: &[],
        required: &[],
    },
    Element {
        name: "oldestMessageWithLowestPriorityEvictionStrategy",
        attributes: &[("evictExpiredMessagesHighWatermark", Int)],
        collections: &[],
        required: &[],
    },
    Element {
        name: "policyEntry",
        attributes: &[
            ("advisoryForConsumed", Bool),
            ("advisoryForDelivery", Bool),
            ("advisoryForDiscardingMessages", Bool),
            ("advisoryForFastProducers", Bool),
            ("advisoryForSlowConsumers", Bool),
            ("advisoryWhenFull", Bool),
            ("allConsumersExclusiveByDefault", Bool),
            ("alwaysRetroactive", Bool),
            ("blockedProducerWarningInterval", Long),
            ("consumersBeforeDispatchStarts", Int),
            ("cursorMemoryHighWaterMark", Int),
            ("doOptimzeMessageStorage", Bool),
            ("durableTopicPrefetch", Int),
            ("enableAudit", Bool),
            ("expireMessagesPeriod", Long),
            ("gcInactiveDestinations", Bool),
            ("gcWithNetworkConsumers", Bool),
            ("inactiveTimeoutBeforeGC", Long),
            ("inactiveTimoutBeforeGC", Long),
            ("includeBodyForAdvisory", Bool),
            ("lazyDispatch", Bool),
            ("maxAuditDepth", Int),
            ("maxBrowsePageSize", Int),
            ("maxDestinations", Int),
            ("maxExpirePageSize", Int),
            ("maxPageSize", Int),
            ("maxProducersToAudit", Int),
            ("maxQueueAuditDepth", Int),
            ("memoryLimit", Size),
            (
                "messageGroupMapFactoryType",
                OneOf(&["bucket", "cached", "simple"]),
            ),
            ("minimumMessageSize", Long),
            ("optimizeMessageStoreInFlightLimit", Int),
            ("optimizedDispatch", Bool),
            ("persistJMSRedelivered", Bool),
            ("prioritizedMessages", Bool),
            ("producerFlowControl", Bool),
            ("queue", Str),
            ("queueBrowserPrefetch", Int),
            ("queuePrefetch", Int),
            ("reduceMemoryFootprint", Bool),
            ("sendAdvisoryIfNoConsumers", Bool),
            ("sendDuplicateFromStoreToDLQ", Bool),
            ("sendFailIfNoSpace", Bool),
            ("sendFailIfNoSpaceAfterTimeout", Long),
            ("storeUsageHighWaterMark", Int),
            ("strictOrderDispatch", Bool),
            ("tempQueue", Bool),
            ("tempTopic", Bool),
            ("timeBeforeDispatchStarts", Int),
            ("topic", Str),
            ("topicPrefetch", Int),
            ("useCache", Bool),
            ("useConsumerPriority", Bool),
            ("usePrefetchExtension", Bool),
            ("useTopicSubscriptionInflightStats", Bool),
        ],
        collections: &[
            Collection {
                name: "deadLetterStrategy",
                single: true,
                children: &[
                    "discarding",
                    "individualDeadLetterStrategy",
                    "sharedDeadLetterStrategy",
                ],
            },
            Collection {
                name: "destination",
                single: true,
                children: DESTINATIONS,
            },
            Collection {
                name: "dispatchPolicy",
                single: true,
                children: &[
                    "clientIdFilterDispatchPolicy",
                    "priorityDispatchPolicy",
                    "priorityNetworkDispatchPolicy",
                    "roundRobinDispatchPolicy",
                    "simpleDispatchPolicy",
                    "strictOrderDispatchPolicy",
                ],
            },
            Collection {
                name: "messageEvictionStrategy",
                single: true,
                children: &[
                    "oldestMessageEvictionStrategy",
                    "oldestMessageWithLowestPriorityEvictionStrategy",
                    "uniquePropertyMessageEvictionStrategy",
                ],
            },
            Collection {
                name: "messageGroupMapFactory",
                single: true,
                children: &[
                    "cachedMessageGroupMapFactory",
                    "messageGroupHashBucketFactory",
                    "simpleMessageGroupMapFactory",
                ],
            },
            Collection {
                name: "networkBridgeFilterFactory",
                single: true,
                children: &["conditionalNetworkBridgeFilterFactory"],
            },
            Collection {
                name: "pendingDurableSubscriberPolicy",
                single: true,
                children: &[
                    "fileDurableSubscriberCursor",
                    "storeDurableSubscriberCursor",
                    "vmDurableCursor",
                ],
            },
            Collection {
                name: "pendingMessageLimitStrategy",
                single: true,
                children: &[
                    "constantPendingMessageLimitStrategy",
                    "prefetchRatePendingMessageLimitStrategy",
                ],
            },
            Collection {
                name: "pendingQueuePolicy",
                single: true,
                children: &["fileQueueCursor", "storeCursor", "vmQueueCursor"],
            },
            Collection {
                name: "pendingSubscriberPolicy",
                single: true,
                children: &["fileCursor", "vmCursor"],
            },
            Collection {
                name: "slowConsumerStrategy",
                single: true,
                children: &["abortSlowAckConsumerStrategy", "abortSlowConsumerStrategy"],
            },
            Collection {
                name: "subscriptionRecoveryPolicy",
                single: true,
                children: SUBSCRIPTION_RECOVERY_POLICIES,
            },
        ],
        required: &[],
    },
    Element {
        name: "policyMap",
        attributes: &[],
        collections: &[
            Collection {
                name: "defaultEntry",
                single: true,
                children: &["policyEntry"],
            },
            Collection {
                name: "policyEntries",
                single: false,
                children: &["policyEntry"],
            },
        ],
        required: &[],
    },
    Element {
        name: "prefetchRatePendingMessageLimitStrategy",
        attributes: &[("multiplier", Double)],
        collections: &[],
        required: &[],
    },
    Element {
        name: "priorityDispatchPolicy",
        attributes: &[],
        collections: &[],
        required: &[],
    },
    Element {
        name: "priorityNetworkDispatchPolicy",
        attributes: &[],
        collections: &[],
        required: &[],
    },
    Element {
        name: "queryBasedSubscriptionRecoveryPolicy",
        attributes: &[("query", Str)],
        collections: &[],
        required: &[],
    },
    Element {
        name: "queue",
        attributes: &[("DLQ", Bool), ("physicalName", Str)],
        collections: &[],
        required: &[],
    },
    Element {
        name: "redeliveryPlugin",
        attributes: &[
            ("fallbackToDeadLetter", Bool),
            ("sendToDlqIfMaxRetriesExceeded", Bool),
        ],
        collections: &[Collection {
            name: "redeliveryPolicyMap",
            single: true,
            children: &["redeliveryPolicyMap"],
        }],
        required: &[],
    },
    Element {
        name: "redeliveryPolicy",
        attributes: &[
            ("backOffMultiplier", Double),
            ("collisionAvoidancePercent", Short),
            ("initialRedeliveryDelay", Long),
            ("maximumRedeliveries", Int),
            ("maximumRedeliveryDelay", Long),
            ("preDispatchCheck", Bool),
            ("queue", Str),
            ("redeliveryDelay", Long),
            ("tempQueue", Bool),
            ("tempTopic", Bool),
            ("topic", Str),
            ("useCollisionAvoidance", Bool),
            ("useExponentialBackOff", Bool),
        ],
        collections: &[],
        required: &[],
    },
    Element {
        name: "redeliveryPolicyMap",
        attributes: &[],
        collections: &[
            Collection {
                name: "defaultEntry",
                single: true,
                children: &["redeliveryPolicy"],
            },
            Collection {
                name: "redeliveryPolicyEntries",
                single: false,
                children: &["redeliveryPolicy"],
            },
        ],
        required: &[],
    },
    Element {
        name: "retainedMessageSubscriptionRecoveryPolicy",
        attributes: &[],
        collections: &[Collection {
            name: "wrapped",
            single: true,
            children: SUBSCRIPTION_RECOVERY_POLICIES,
        }],
        required: &[],
    },
    Element {
        name: "roundRobinDispatchPolicy",
        attributes: &[],
        collections: &[],
        required: &[],
    },
    Element {
        name: "sharedDeadLetterStrategy",
        attributes: &[
            ("enableAudit", Bool),
            ("expiration", Long),
            ("maxAuditDepth", Int),
            ("maxProducersToAudit", Int),
            ("processExpired", Bool),
            ("processNonPersistent", Bool),
        ],
        collections: &[Collection {
            name: "deadLetterQueue",
            single: true,
            children: DESTINATIONS,
        }],
        required: &[],
    },
    Element {
        name: "simpleDispatchPolicy",
        attributes: &[],
        collections: &[],
        required: &[],
    },
    Element {
        name: "simpleMessageGroupMapFactory",
        attributes: &[],
        collections: &[],
        required: &[],
    },
    Element {
        name: "statisticsBrokerPlugin",
        attributes: &[],
        collections: &[],
        required: &[],
    },
    Element {
        name: "storeCursor",
        attributes: &[],
        collections: &[],
        required: &[],
    },
    Element {
        name: "storeDurableSubscriberCursor",
        attributes: &[("immediatePriorityDispatch", Bool), ("useCache", Bool)],
        collections: &[],
        required: &[],
    },
    Element {
        name: "strictOrderDispatchPolicy",
        attributes: &[],
        collections: &[],
        required: &[],
    },
    Element {
        name: "systemUsage",
        attributes: &[
            ("sendFailIfNoSpace", Bool),
            ("sendFailIfNoSpaceAfterTimeout", Long),
        ],
        collections: &[Collection {
            name: "memoryUsage",
            single: true,
            children: &["memoryUsage"],
        }],
        required: &[],
    },
    Element {
        name: "tempDestinationAuthorizationEntry",
        attributes: &[
            ("admin", Str),
            ("queue", Str),
            ("read", Str),
            ("tempQueue", Bool),
            ("tempTopic", Bool),
            ("topic", Str),
            ("write", Str),
        ],
        collections: &[],
        required: &[],
    },
    Element {
        name: "tempQueue",
        attributes: &[("DLQ", Bool), ("physicalName", Str)],
        collections: &[],
        required: &[],
    },
    Element {
        name: "tempTopic",
        attributes: &[("DLQ", Bool), ("physicalName", Str)],
        collections: &[],
        required: &[],
    },
    Element {
        name: "timeStampingBrokerPlugin",
        attributes: &[
            ("futureOnly", Bool),
            ("processNetworkMessages", Bool),
            ("ttlCeiling", Long),
            ("zeroExpirationOverride", Long),
        ],
        collections: &[],
        required: &[],
    },
    Element {
        name: "timedSubscriptionRecoveryPolicy",
        attributes: &[("recoverDuration", Long)],
        collections: &[],
        required: &[],
    },
    Element {
        name: "topic",
        attributes: &[("DLQ", Bool), ("physicalName", Str)],
        collections: &[],
        required: &[],
    },
    Element {
        name: "transportConnector",
        attributes: &[
            ("name", OneOf(&["openwire"])),
            ("rebalanceClusterClients", Bool),
            ("updateClusterClients", Bool),
            ("updateClusterClientsOnRemove", Bool),
        ],
        collections: &[],
        required: &["name"],
    },
    Element {
        name: "uniquePropertyMessageEvictionStrategy",
        attributes: &[
            ("evictExpiredMessagesHighWatermark", Int),
            ("propertyName", Str),
        ],
        collections: &[],
        required: &[],
    },
    Element {
        name: "virtualDestinationInterceptor",
        attributes: &[],
        collections: &[Collection {
            name: "virtualDestinations",
            single: false,
            children: &["compositeQueue", "compositeTopic", "virtualTopic"],
        }],
        required: &[],
    },
    Element {
        name: "virtualTopic",
        attributes: &[
            ("concurrentSend", Bool),
            ("dropOnResourceLimit", Bool),
            ("local", Bool),
            ("name", Str),
            ("postfix", Str),
            ("prefix", Str),
            ("selectorAware", Bool),
            ("setOriginalDestination", Bool),
            ("transactedSend", Bool),
        ],
        collections: &[],
        required: &[],
    },
    Element {
        name: "vmCursor",
        attributes: &[],
        collections: &[],
        required: &[],
    },
    Element {
        name: "vmDurableCursor",
        attributes: &[],
        collections: &[],
        required: &[],
    },
    Element {
        name: "vmQueueCursor",
        attributes: &[],
        collections: &[],
        required: &[],
    },
];

fn element_spec(name: &str) -> Option<&'static Element> {
    ELEMENTS
        .binary_search_by(|e| e.name.cmp(name))
        .ok()
        .map(|i| &ELEMENTS[i])
}

/// Whether `v` is an acceptable value of type `ty`. Spring placeholders (`${…}`) and
/// expressions (`#{…}`) are never acceptable: Amazon MQ takes static values only.
fn valid(ty: Ty, v: &str) -> bool {
    if v.contains("${") || v.contains("#{") || v.chars().count() > MAX_VALUE_CHARS {
        return false;
    }
    match ty {
        Bool => v == "true" || v == "false",
        Short => v.parse::<i16>().is_ok(),
        Int => v.parse::<i32>().is_ok(),
        Long => v.parse::<i64>().is_ok(),
        Double => v.parse::<f64>().is_ok_and(f64::is_finite),
        Range(lo, hi) => v.parse::<i64>().is_ok_and(|n| (lo..=hi).contains(&n)),
        OneOf(options) => options.contains(&v),
        Size => {
            let digits = v.trim_end_matches(|c: char| c.is_ascii_alphabetic());
            let unit = v[digits.len()..].to_ascii_lowercase();
            !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && digits.parse::<u64>().is_ok()
                && ["", "b", "k", "kb", "m", "mb", "g", "gb"].contains(&unit.as_str())
        }
        Str => true,
        NetworkUri => valid_network_uri(v),
        TransportUri => valid_transport_uri(v),
    }
}

/// `static:(uri, …)` or `masterslave:(uri, …)`, each `uri` a [`valid_transport_uri`],
/// with optional `?key=value&…` options after the list.
fn valid_network_uri(v: &str) -> bool {
    let Some(rest) = v
        .strip_prefix("static:(")
        .or_else(|| v.strip_prefix("masterslave:("))
    else {
        return false;
    };
    let Some((list, after)) = rest.split_once(')') else {
        return false;
    };
    let options_ok = after.is_empty() || after.strip_prefix('?').is_some_and(valid_query);
    options_ok && list.split(',').all(|u| valid_transport_uri(u.trim()))
}

/// `tcp://host:port` or `ssl://host:port`, optionally `?key=value&…`. The host is a DNS
/// name or an IPv4 address, and not this machine (loopback, unspecified) nor link-local
/// (cloud metadata endpoints).
fn valid_transport_uri(v: &str) -> bool {
    let Some(rest) = v
        .strip_prefix("tcp://")
        .or_else(|| v.strip_prefix("ssl://"))
    else {
        return false;
    };
    let (authority, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let Some((host, port)) = authority.rsplit_once(':') else {
        return false;
    };
    let port_ok =
        port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok_and(|p| p != 0);
    port_ok && valid_host(host) && query.is_none_or(valid_query)
}

fn valid_host(host: &str) -> bool {
    let lower = host.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return false;
    }
    if let Ok(ip) = lower.parse::<std::net::Ipv4Addr>() {
        return !(ip.is_loopback() || ip.is_unspecified() || ip.is_link_local());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    // A name whose last label is numeric would be read as an IPv4 address.
    lower.len() <= 253
        && lower.split('.').all(label_ok)
        && !lower
            .rsplit('.')
            .next()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
}

/// `key=value&…`: keys of letters, digits and dots, values of letters, digits, `.`,
/// `_` and `-`.
fn valid_query(q: &str) -> bool {
    q.split('&').all(|pair| {
        pair.split_once('=').is_some_and(|(k, v)| {
            !k.is_empty()
                && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
    })
}

/// The kept tree.
enum Out {
    Element {
        name: &'static str,
        attributes: Vec<(&'static str, String)>,
        children: Vec<Out>,
    },
    Comment(String),
}

struct Sanitizer<'doc> {
    /// Namespace of the `<broker>`: every element in it must share it.
    ns: Option<&'doc str>,
    warnings: Vec<Warning>,
}

fn bad(message: impl Into<String>) -> Error {
    Error::bad_request("data", message)
}

impl<'doc> Sanitizer<'doc> {
    /// An attribute's name as the tenant wrote it (with its prefix), for warnings.
    fn display_attr(node: roxmltree::Node, attr: &roxmltree::Attribute) -> String {
        match attr.namespace() {
            None => attr.name().to_owned(),
            Some(uri) => match node.lookup_prefix(uri) {
                Some(prefix) if !prefix.is_empty() => format!("{prefix}:{}", attr.name()),
                _ => attr.name().to_owned(),
            },
        }
    }

    fn in_ns(&self, node: roxmltree::Node) -> bool {
        node.tag_name().namespace() == self.ns
    }

    /// Text may only be whitespace: no permitted element has content of its own.
    fn check_text(node: roxmltree::Node, parent: &str) -> Result<(), Error> {
        match node.text() {
            Some(t) if !t.trim().is_empty() => Err(bad(format!(
                "Text is not allowed inside <{parent}>: {:?}.",
                t.trim().chars().take(40).collect::<String>()
            ))),
            _ => Ok(()),
        }
    }

    /// Comments are kept as written (the parser guarantees they are well-formed).
    fn comment(node: roxmltree::Node) -> Option<Out> {
        node.text()
            .filter(|t| !t.contains("--") && !t.ends_with('-'))
            .map(|t| Out::Comment(t.to_owned()))
    }

    /// A permitted element; `None` if it must go after all (a required attribute is
    /// missing).
    fn element(
        &mut self,
        node: roxmltree::Node<'_, 'doc>,
        spec: &'static Element,
    ) -> Result<Option<Out>, Error> {
        let mut attrs: Vec<(String, roxmltree::Attribute)> = node
            .attributes()
            .map(|a| (Self::display_attr(node, &a), a))
            .collect();
        attrs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut attributes = Vec::new();
        for (shown, attr) in attrs {
            let allowed = match attr.namespace() {
                Some(_) => None,
                None => spec.attributes.iter().find(|(n, _)| *n == attr.name()),
            };
            match allowed {
                None => self.warnings.push(Warning::attribute(
                    WarningReason::DisallowedAttributeRemoved,
                    spec.name,
                    &shown,
                )),
                Some((_, ty)) if !valid(*ty, attr.value()) => {
                    self.warnings.push(Warning::attribute(
                        WarningReason::InvalidAttributeValueRemoved,
                        spec.name,
                        &shown,
                    ))
                }
                Some((name, _)) => attributes.push((*name, attr.value().to_owned())),
            }
        }
        if spec
            .required
            .iter()
            .any(|r| !attributes.iter().any(|(n, _)| n == r))
        {
            self.warnings.push(Warning::element(spec.name));
            return Ok(None);
        }
        let mut children = Vec::new();
        let mut seen: Vec<&'static str> = Vec::new();
        for child in node.children() {
            if child.is_text() {
                Self::check_text(child, spec.name)?;
                continue;
            }
            if child.is_comment() {
                children.extend(Self::comment(child));
                continue;
            }
            if !child.is_element() {
                continue; // processing instructions
            }
            let name = child.tag_name().name();
            let collection = spec.collections.iter().find(|c| c.name == name);
            match collection {
                Some(c) if self.in_ns(child) && !(c.single && seen.contains(&c.name)) => {
                    seen.push(c.name);
                    children.extend(self.collection(child, c)?);
                }
                _ => self.warnings.push(Warning::element(name)),
            }
        }
        Ok(Some(Out::Element {
            name: spec.name,
            attributes,
            children,
        }))
    }

    /// A child collection; `None` if every element in it was removed.
    fn collection(
        &mut self,
        node: roxmltree::Node<'_, 'doc>,
        spec: &'static Collection,
    ) -> Result<Option<Out>, Error> {
        let mut attrs: Vec<String> = node
            .attributes()
            .map(|a| Self::display_attr(node, &a))
            .collect();
        attrs.sort();
        for shown in attrs {
            self.warnings.push(Warning::attribute(
                WarningReason::DisallowedAttributeRemoved,
                spec.name,
                &shown,
            ));
        }
        let mut children = Vec::new();
        let (mut written, mut kept) = (0, 0);
        for child in node.children() {
            if child.is_text() {
                Self::check_text(child, spec.name)?;
                continue;
            }
            if child.is_comment() {
                children.extend(Self::comment(child));
                continue;
            }
            if !child.is_element() {
                continue;
            }
            written += 1;
            let name = child.tag_name().name();
            let allowed =
                self.in_ns(child) && spec.children.contains(&name) && !(spec.single && kept > 0);
            match element_spec(name).filter(|_| allowed) {
                Some(el) => {
                    if let Some(out) = self.element(child, el)? {
                        kept += 1;
                        children.push(out);
                    }
                }
                None => self.warnings.push(Warning::element(name)),
            }
        }
        if written > 0 && kept == 0 {
            return Ok(None);
        }
        Ok(Some(Out::Element {
            name: spec.name,
            attributes: Vec::new(),
            children,
        }))
    }
}

fn parse_error(e: roxmltree::Error) -> Error {
    match e {
        roxmltree::Error::DtdDetected
        | roxmltree::Error::UnknownEntityReference(..)
        | roxmltree::Error::EntityReferenceLoop(..) => bad(format!(
            "DOCTYPE declarations and entities other than the predefined ones are not \
             allowed in ActiveMQ configurations: {e}."
        )),
        roxmltree::Error::NodesLimitReached => {
            bad("The ActiveMQ configuration has too many XML nodes.")
        }
        e => bad(format!(
            "The ActiveMQ configuration is not well-formed XML: {e}."
        )),
    }
}

/// Sanitizes an ActiveMQ configuration revision. Returns the text to store (see the
/// module documentation for its form) and what was removed, all of it: the caller
/// answers the first 20. Input that is not XML, has a DOCTYPE or entity declarations or
/// references, is larger than [`MAX_INPUT_BYTES`], nests too deep, or has no `<broker>`
/// root (directly or in a Spring `<beans>`) is a 400 on `data`.
pub fn sanitize(input: &str) -> Result<(String, Vec<Warning>), Error> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(bad(format!(
            "The ActiveMQ configuration must be at most {} KiB.",
            MAX_INPUT_BYTES / 1024
        )));
    }
    // Refused before parsing: the parser would accept an empty DOCTYPE. (So is a comment
    // that mentions one: a false positive nobody needs to be spared.)
    if input.contains("<!DOCTYPE") || input.contains("<!ENTITY") {
        return Err(bad(
            "DOCTYPE declarations and entities are not allowed in ActiveMQ configurations.",
        ));
    }
    let text = input.trim_start_matches(|c: char| c == '\u{feff}' || c.is_whitespace());
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, options).map_err(parse_error)?;

    // Depth of every node, in one pass (parents come before their children).
    let mut depth = vec![0usize; doc.descendants().count() + 1];
    for node in doc.descendants() {
        let d = node.parent().map_or(0, |p| depth[p.id().get_usize()] + 1);
        if d > MAX_DEPTH {
            return Err(bad(format!(
                "The ActiveMQ configuration nests elements deeper than {MAX_DEPTH} levels."
            )));
        }
        depth[node.id().get_usize()] = d;
    }

    let mut warnings = Vec::new();
    let root = doc.root_element();
    let name = root.tag_name();
    let broker = match (name.namespace(), name.name()) {
        (Some(ACTIVEMQ_CORE_NS) | None, "broker") => root,
        (Some(SPRING_BEANS_NS) | None, "beans") => {
            let mut brokers = Vec::new();
            for child in root.children() {
                if child.is_text() {
                    Sanitizer::check_text(child, "beans")?;
                } else if child.is_element() {
                    let n = child.tag_name();
                    if n.name() == "broker" && n.namespace() == Some(ACTIVEMQ_CORE_NS) {
                        brokers.push(child);
                    } else {
                        warnings.push(Warning::element(n.name()));
                    }
                }
            }
            match brokers[..] {
                [broker] => broker,
                [] => {
                    return Err(bad(format!(
                        "The <beans> element must contain a <broker xmlns=\"{ACTIVEMQ_CORE_NS}\">."
                    )))
                }
                _ => return Err(bad("The <beans> element must contain only one <broker>.")),
            }
        }
        (_, other) => {
            return Err(bad(format!(
                "The root element must be <broker xmlns=\"{ACTIVEMQ_CORE_NS}\"> (or a Spring \
                 <beans> containing it), not <{other}>."
            )))
        }
    };

    let mut sanitizer = Sanitizer {
        ns: broker.tag_name().namespace(),
        warnings,
    };
    let spec = element_spec("broker").expect("broker is in the table");
    // `broker` has no required attributes, so it is never removed.
    let tree = sanitizer
        .element(broker, spec)?
        .ok_or_else(|| bad("The <broker> element was removed."))?;
    let mut text = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    write(&mut text, &tree, 0);
    Ok((text, sanitizer.warnings))
}

/// Escapes an attribute value (`&`, `<`, `"`; `>` needs no escape and ActiveMQ's
/// wildcards read better without one), tabs and line breaks too, so that they survive
/// the attribute-value normalization of the next parse.
fn escape(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
}

fn write(out: &mut String, node: &Out, depth: usize) {
    let indent = "  ".repeat(depth);
    match node {
        Out::Comment(text) => {
            out.push_str(&indent);
            out.push_str("<!--");
            out.push_str(text);
            out.push_str("-->\n");
        }
        Out::Element {
            name,
            attributes,
            children,
        } => {
            out.push_str(&indent);
            out.push('<');
            out.push_str(name);
            if depth == 0 {
                out.push_str(" xmlns=\"");
                out.push_str(ACTIVEMQ_CORE_NS);
                out.push('"');
            }
            for (attr, value) in attributes {
                out.push(' ');
                out.push_str(attr);
                out.push_str("=\"");
                escape(value, out);
                out.push('"');
            }
            if children.is_empty() {
                out.push_str("/>\n");
                return;
            }
            out.push_str(">\n");
            for child in children {
                write(out, child, depth + 1);
            }
            out.push_str(&indent);
            out.push_str("</");
            out.push_str(name);
            out.push_str(">\n");
        }
    }
}

/// Revision 1 of every new ActiveMQ configuration (Berth's default for 5.17): the
/// delivery defaults tenants should see. Dead letters go to one queue per destination,
/// `DLQ.<name>` (for topics: their durable subscriptions' dead letters); a message is
/// redelivered by the broker up to 6 times, 1 s after its first failure and then with
/// doubling delays, before it is dead-lettered. The redelivery plugin needs
/// `schedulerSupport="true"` and delays of at least 1000 ms.
pub const DEFAULT_ACTIVEMQ_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<broker xmlns="http://activemq.apache.org/schema/core" schedulerSupport="true">
  <!-- Berth default configuration for ActiveMQ. Listeners, storage and users are managed by Berth; elements and attributes that Amazon MQ does not permit are removed. -->
  <destinationPolicy>
    <policyMap>
      <policyEntries>
        <policyEntry queue=">">
          <deadLetterStrategy>
            <individualDeadLetterStrategy queuePrefix="DLQ." useQueueForQueueMessages="true"/>
          </deadLetterStrategy>
        </policyEntry>
        <policyEntry topic=">">
          <deadLetterStrategy>
            <individualDeadLetterStrategy topicPrefix="DLQ." useQueueForTopicMessages="true"/>
          </deadLetterStrategy>
        </policyEntry>
      </policyEntries>
    </policyMap>
  </destinationPolicy>
  <plugins>
    <redeliveryPlugin fallbackToDeadLetter="true" sendToDlqIfMaxRetriesExceeded="true">
      <redeliveryPolicyMap>
        <redeliveryPolicyMap>
          <defaultEntry>
            <redeliveryPolicy backOffMultiplier="2" initialRedeliveryDelay="1000" maximumRedeliveries="6" redeliveryDelay="1000" useExponentialBackOff="true"/>
          </defaultEntry>
        </redeliveryPolicyMap>
      </redeliveryPolicyMap>
    </redeliveryPlugin>
  </plugins>
</broker>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// Sanitizes `input`, checking that the result is a fixed point.
    fn run(input: &str) -> (String, Vec<Warning>) {
        let (out, warnings) = sanitize(input).unwrap();
        let (again, more) = sanitize(&out).unwrap();
        assert_eq!(again, out, "not a fixed point: {input}");
        assert!(more.is_empty(), "{more:?}");
        (out, warnings)
    }

    fn clean(input: &str) -> String {
        let (out, warnings) = run(input);
        assert!(warnings.is_empty(), "{warnings:?}");
        out
    }

    fn el(name: &str) -> Warning {
        Warning::element(name)
    }

    fn attr(element: &str, attribute: &str) -> Warning {
        Warning::attribute(
            WarningReason::DisallowedAttributeRemoved,
            element,
            attribute,
        )
    }

    fn value(element: &str, attribute: &str) -> Warning {
        Warning::attribute(
            WarningReason::InvalidAttributeValueRemoved,
            element,
            attribute,
        )
    }

    fn broker(inner: &str) -> String {
        format!("<broker xmlns=\"{ACTIVEMQ_CORE_NS}\">{inner}</broker>")
    }

    fn rejected(input: &str) -> String {
        let err = sanitize(input).unwrap_err();
        assert_eq!(err.attribute(), Some("data"), "{err}");
        err.to_string()
    }

    #[test]
    fn the_default_passes_unchanged() {
        assert_eq!(clean(DEFAULT_ACTIVEMQ_XML), DEFAULT_ACTIVEMQ_XML);
    }

    #[test]
    fn the_tables_are_sorted_and_closed() {
        for pair in ELEMENTS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} / {}",
                pair[0].name,
                pair[1].name
            );
        }
        for e in ELEMENTS {
            for pair in e.attributes.windows(2) {
                assert!(
                    pair[0].0 < pair[1].0,
                    "{}: {} / {}",
                    e.name,
                    pair[0].0,
                    pair[1].0
                );
            }
            for c in e.collections {
                for child in c.children {
                    assert!(
                        element_spec(child).is_some(),
                        "{} / {} / {child}",
                        e.name,
                        c.name
                    );
                }
            }
            for r in e.required {
                assert!(e.attributes.iter().any(|(n, _)| n == r), "{}: {r}", e.name);
            }
        }
        // Everything but the root is reachable from it.
        let mut reached = vec!["broker"];
        let mut i = 0;
        while i < reached.len() {
            let e = element_spec(reached[i]).unwrap();
            for c in e.collections {
                for child in c.children {
                    if !reached.contains(child) {
                        reached.push(child);
                    }
                }
            }
            i += 1;
        }
        assert_eq!(reached.len(), ELEMENTS.len());
    }

    /// A configuration as written for Amazon MQ (its documentation's examples, in the
    /// Spring wrapper its console shows).
    const AMAZON_MQ_SAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<beans xmlns="http://www.springframework.org/schema/beans" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" schedulePeriodForDestinationPurge="10000" schedulerSupport="true" networkConnectorStartAsync="false">
    <!-- Virtual topics and a mirrored queue. -->
    <destinationInterceptors>
      <mirroredQueue copyMessage="true" postfix=".qmirror" prefix=""/>
      <virtualDestinationInterceptor>
        <virtualDestinations>
          <virtualTopic name="&gt;" prefix="VirtualTopicConsumers.*." selectorAware="false"/>
          <compositeQueue name="MY.QUEUE" forwardOnly="false">
            <forwardTo>
              <queue physicalName="FOO"/>
              <topic physicalName="BAR"/>
              <filteredDestination selector="odd = 'yes'" queue="FOO.ODD"/>
            </forwardTo>
          </compositeQueue>
        </virtualDestinations>
      </virtualDestinationInterceptor>
    </destinationInterceptors>
    <destinationPolicy>
      <policyMap>
        <policyEntries>
          <policyEntry topic="&gt;" gcInactiveDestinations="true" inactiveTimoutBeforeGC="600000" memoryLimit="64mb">
            <pendingMessageLimitStrategy>
              <constantPendingMessageLimitStrategy limit="1000"/>
            </pendingMessageLimitStrategy>
            <subscriptionRecoveryPolicy>
              <retainedMessageSubscriptionRecoveryPolicy>
                <wrapped>
                  <lastImageSubscriptionRecoveryPolicy/>
                </wrapped>
              </retainedMessageSubscriptionRecoveryPolicy>
            </subscriptionRecoveryPolicy>
          </policyEntry>
          <policyEntry queue="&gt;" gcInactiveDestinations="true" inactiveTimoutBeforeGC="600000" prioritizedMessages="true" queuePrefetch="1">
            <deadLetterStrategy>
              <sharedDeadLetterStrategy processExpired="false">
                <deadLetterQueue>
                  <queue physicalName="ActiveMQ.DLQ"/>
                </deadLetterQueue>
              </sharedDeadLetterStrategy>
            </deadLetterStrategy>
            <slowConsumerStrategy>
              <abortSlowAckConsumerStrategy maxTimeSinceLastAck="30000"/>
            </slowConsumerStrategy>
            <pendingQueuePolicy>
              <storeCursor/>
            </pendingQueuePolicy>
          </policyEntry>
        </policyEntries>
      </policyMap>
    </destinationPolicy>
    <destinations>
      <queue physicalName="orders"/>
      <topic physicalName="prices"/>
    </destinations>
    <networkConnectors>
      <networkConnector name="connector_1_to_2" userName="myCommonUser" duplex="true" uri="masterslave:(ssl://b-1234a5b6-78cd-901e-2fgh-3i45j6k178l9-1.mq.us-east-2.amazonaws.com:61617,
        ssl://b-9876l5k4-32ji-109h-8gfe-7d65c4b132a1-2.mq.us-east-2.amazonaws.com:61617)">
        <excludedDestinations>
          <queue physicalName="local.&gt;"/>
        </excludedDestinations>
      </networkConnector>
    </networkConnectors>
    <persistenceAdapter>
      <kahaDB concurrentStoreAndDispatchQueues="false" journalDiskSyncInterval="10000" journalDiskSyncStrategy="periodic" preallocationStrategy="zeros"/>
    </persistenceAdapter>
    <plugins>
      <authorizationPlugin>
        <map>
          <authorizationMap>
            <authorizationEntries>
              <authorizationEntry admin="admins,activemq-webconsole" read="admins,users,activemq-webconsole" write="admins,activemq-webconsole" queue="&gt;"/>
              <authorizationEntry admin="admins,activemq-webconsole" read="admins,users,activemq-webconsole" write="admins,activemq-webconsole" topic="&gt;"/>
              <authorizationEntry admin="admins,users" read="admins,users" write="admins,users" topic="ActiveMQ.Advisory.&gt;"/>
            </authorizationEntries>
            <tempDestinationAuthorizationEntry>
              <tempDestinationAuthorizationEntry admin="tempDestinationAdmins" read="tempDestinationAdmins" write="tempDestinationAdmins"/>
            </tempDestinationAuthorizationEntry>
          </authorizationMap>
        </map>
      </authorizationPlugin>
      <discardingDLQBrokerPlugin dropAll="false" dropOnly="MY.EXAMPLE.QUEUE" reportInterval="1000"/>
      <forcePersistencyModeBrokerPlugin persistenceFlag="true"/>
      <statisticsBrokerPlugin/>
      <timeStampingBrokerPlugin ttlCeiling="86400000" zeroExpirationOverride="86400000"/>
      <redeliveryPlugin fallbackToDeadLetter="true" sendToDlqIfMaxRetriesExceeded="true">
        <redeliveryPolicyMap>
          <redeliveryPolicyMap>
            <redeliveryPolicyEntries>
              <redeliveryPolicy queue="SpecialQueue" maximumRedeliveries="4" redeliveryDelay="10000"/>
            </redeliveryPolicyEntries>
            <defaultEntry>
              <redeliveryPolicy maximumRedeliveries="4" initialRedeliveryDelay="5000" redeliveryDelay="10000"/>
            </defaultEntry>
          </redeliveryPolicyMap>
        </redeliveryPolicyMap>
      </redeliveryPlugin>
    </plugins>
    <systemUsage>
      <systemUsage sendFailIfNoSpace="true" sendFailIfNoSpaceAfterTimeout="2000">
        <memoryUsage>
          <memoryUsage percentOfJvmHeap="60"/>
        </memoryUsage>
      </systemUsage>
    </systemUsage>
    <transportConnectors>
      <transportConnector name="openwire" updateClusterClients="true" rebalanceClusterClients="true" updateClusterClientsOnRemove="true"/>
    </transportConnectors>
  </broker>
</beans>
"#;

    #[test]
    fn an_amazon_mq_sample_passes_and_round_trips() {
        let out = clean(AMAZON_MQ_SAMPLE);
        assert!(
            out.starts_with(&format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<broker xmlns=\"{ACTIVEMQ_CORE_NS}\" \
             networkConnectorStartAsync=\"false\" schedulePeriodForDestinationPurge=\"10000\" \
             schedulerSupport=\"true\">\n  <!-- Virtual topics and a mirrored queue. -->\n  \
             <destinationInterceptors>\n    <mirroredQueue copyMessage=\"true\" \
             postfix=\".qmirror\" prefix=\"\"/>\n"
            )),
            "{out}"
        );
        for kept in [
            "<virtualTopic name=\">\" prefix=\"VirtualTopicConsumers.*.\" selectorAware=\"false\"/>",
            "<filteredDestination queue=\"FOO.ODD\" selector=\"odd = 'yes'\"/>",
            "<lastImageSubscriptionRecoveryPolicy/>",
            "uri=\"masterslave:(ssl://b-1234a5b6-78cd-901e-2fgh-3i45j6k178l9-1.mq.us-east-2.amazonaws.com:61617,         ssl://",
            "<kahaDB concurrentStoreAndDispatchQueues=\"false\" journalDiskSyncInterval=\"10000\" journalDiskSyncStrategy=\"periodic\" preallocationStrategy=\"zeros\"/>",
            "<tempDestinationAuthorizationEntry admin=\"tempDestinationAdmins\"",
            "<memoryUsage percentOfJvmHeap=\"60\"/>",
            "<transportConnector name=\"openwire\" rebalanceClusterClients=\"true\"",
            "<redeliveryPolicy maximumRedeliveries=\"4\" queue=\"SpecialQueue\"",
            "\n  </plugins>\n  <systemUsage>\n",
        ] {
            assert!(out.contains(kept), "{kept} missing from\n{out}");
        }
        assert!(!out.contains("beans") && !out.contains("xsi"), "{out}");
        // A fixed point, and deterministic.
        assert_eq!(clean(&out), out);
        assert_eq!(clean(AMAZON_MQ_SAMPLE), out);
    }

    #[test]
    fn removed_elements_are_reported_by_name() {
        let (out, warnings) = run(&format!(
            "<beans xmlns=\"{SPRING_BEANS_NS}\" xmlns:context=\"http://www.springframework.org/schema/context\">\
             <context:property-placeholder/>\
             <bean id=\"x\" class=\"java.lang.Runtime\"><property name=\"a\" value=\"b\"/></bean>\
             <import resource=\"file:///etc/passwd\"/>\
             <broker xmlns=\"{ACTIVEMQ_CORE_NS}\">\
               <sslContext><sslContext keyStore=\"file:/k\"/></sslContext>\
               <managementContext><managementContext createConnector=\"true\"/></managementContext>\
               <queue physicalName=\"wrong-parent\"/>\
               <other xmlns=\"urn:not-activemq\"/>\
               <plugins><jaasAuthenticationPlugin configuration=\"x\"/><statisticsBrokerPlugin/></plugins>\
               <persistenceAdapter><jdbcPersistenceAdapter dataSource=\"#ds\"/></persistenceAdapter>\
               <shutdownHooks><bean xmlns=\"{SPRING_BEANS_NS}\" class=\"x\"/></shutdownHooks>\
             </broker></beans>"
        ));
        assert_eq!(
            warnings,
            vec![
                el("property-placeholder"),
                el("bean"),
                el("import"),
                el("sslContext"),
                el("managementContext"),
                el("queue"),
                el("other"),
                el("jaasAuthenticationPlugin"),
                el("jdbcPersistenceAdapter"),
                el("shutdownHooks"),
            ]
        );
        // An emptied collection goes too; a kept one keeps what remains.
        assert_eq!(
            out,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<broker xmlns=\"{ACTIVEMQ_CORE_NS}\">\n  \
                 <plugins>\n    <statisticsBrokerPlugin/>\n  </plugins>\n</broker>\n"
            )
        );
    }

    #[test]
    fn removed_attributes_are_reported_in_lexical_order() {
        let (out, warnings) = run(&broker(
            "<destinationPolicy><policyMap><policyEntries>\
             <policyEntry queue=\"&gt;\" zUnknown=\"1\" maxPageSize=\"lots\" aUnknown=\"2\" memoryLimit=\"1XB\" producerFlowControl=\"yes\"/>\
             </policyEntries></policyMap></destinationPolicy>",
        )
        .replace(
            "<broker ",
            "<broker zUnknown=\"1\" brokerName=\"name\" dataDirectory=\"${activemq.data}\" useJmx=\"true\" aUnknown=\"2\" advisorySupport=\"false\" persistent=\"maybe\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:schemaLocation=\"x\" ",
        ));
        assert_eq!(
            warnings,
            vec![
                attr("broker", "aUnknown"),
                attr("broker", "brokerName"),
                attr("broker", "dataDirectory"),
                value("broker", "persistent"),
                attr("broker", "useJmx"),
                attr("broker", "xsi:schemaLocation"),
                attr("broker", "zUnknown"),
                attr("policyEntry", "aUnknown"),
                value("policyEntry", "maxPageSize"),
                value("policyEntry", "memoryLimit"),
                value("policyEntry", "producerFlowControl"),
                attr("policyEntry", "zUnknown"),
            ]
        );
        assert!(
            out.contains(&format!(
                "<broker xmlns=\"{ACTIVEMQ_CORE_NS}\" advisorySupport=\"false\">"
            )),
            "{out}"
        );
        assert!(out.contains("<policyEntry queue=\">\"/>"), "{out}");
    }

    /// The cases Amazon MQ was observed answering (configuration-only captures).
    #[test]
    fn amazon_mq_observed_cases() {
        let cases: &[(&str, &str, Vec<Warning>)] = &[
            ("unknownSetting=\"true\" advisorySupport=\"false\"", "", vec![attr("broker", "unknownSetting")]),
            ("brokerName=\"customer-name\" advisorySupport=\"false\"", "", vec![attr("broker", "brokerName")]),
            ("", "<unknownSetting/>", vec![el("unknownSetting")]),
            ("", "<unknownSetting unsafe=\"true\"><anotherUnknown/><queue physicalName=\"should-not-exist\"/></unknownSetting>", vec![el("unknownSetting")]),
            ("advisorySupport=\"${value}\" populateJMSXUserID=\"#{value}\"", "", vec![value("broker", "advisorySupport"), value("broker", "populateJMSXUserID")]),
            ("schedulerSupport=\"false\"", "", vec![]),
            ("", "<other xmlns=\"urn:not-activemq\"/>", vec![el("other")]),
            ("", "<queue physicalName=\"wrong-parent\"/>", vec![el("queue")]),
        ];
        for (attrs, inner, expected) in cases {
            let input = format!("<broker xmlns=\"{ACTIVEMQ_CORE_NS}\" {attrs}>{inner}</broker>");
            let (out, warnings) = run(&input);
            assert_eq!(&warnings, expected, "{input}");
            assert!(
                !out.contains("unknown")
                    && !out.contains("should-not-exist")
                    && !out.contains("value"),
                "{out}"
            );
        }
    }

    #[test]
    fn dtds_and_entities_are_refused_and_never_resolved() {
        let inputs = [
            "<!DOCTYPE broker><broker xmlns=\"http://activemq.apache.org/schema/core\"/>".to_owned(),
            // Billion laughs.
            format!(
                "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">\
                 <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\
                 <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>\
                 <broker xmlns=\"{ACTIVEMQ_CORE_NS}\"><destinations><queue physicalName=\"&lol3;\"/></destinations></broker>"
            ),
            // External entity.
            format!(
                "<?xml version=\"1.0\"?><!DOCTYPE broker [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\
                 <broker xmlns=\"{ACTIVEMQ_CORE_NS}\"><destinations><queue physicalName=\"&xxe;\"/></destinations></broker>"
            ),
            // Parameter entity.
            "<!DOCTYPE b [<!ENTITY % p SYSTEM \"http://169.254.169.254/\"> %p;]><broker/>".to_owned(),
            // A reference to an entity nobody declared.
            broker("<destinations><queue physicalName=\"&xxe;\"/></destinations>"),
            broker("<destinations><queue physicalName=\"a\"/>&xxe;</destinations>"),
        ];
        for input in inputs {
            let message = rejected(&input);
            assert!(
                !message.contains("root:") && !message.contains("lollol"),
                "{message}"
            );
        }
        // Character references and the predefined entities are fine.
        let out = clean(&broker(
            "<destinations><queue physicalName=\"&#65;&lt;&gt;&amp;&apos;&quot;\"/></destinations>",
        ));
        assert!(out.contains("physicalName=\"A&lt;>&amp;'&quot;\""), "{out}");
    }

    #[test]
    fn malformed_xml_is_refused() {
        for input in [
            "",
            "not xml",
            "<broker xmlns=\"http://activemq.apache.org/schema/core\">",
            "<broker xmlns=\"http://activemq.apache.org/schema/core\"><plugins></broker>",
            "<broker xmlns=\"http://activemq.apache.org/schema/core\" persistent=\"true\" persistent=\"false\"/>",
            "<broker xmlns=\"http://activemq.apache.org/schema/core\"/><broker/>",
            "<broker xmlns=\"http://activemq.apache.org/schema/core\" a=\"<\"/>",
        ] {
            rejected(input);
        }
        // Well-formed, but not a broker configuration.
        rejected("<configuration/>");
        rejected("<broker xmlns=\"urn:other\"/>");
        rejected(&format!(
            "<beans xmlns=\"{SPRING_BEANS_NS}\"><bean/></beans>"
        ));
        rejected(&format!(
            "<beans xmlns=\"{SPRING_BEANS_NS}\">{}{}</beans>",
            broker(""),
            broker("")
        ));
        assert!(rejected(&broker("<plugins>hello</plugins>")).contains("Text is not allowed"));
        // Text in a removed subtree goes with it.
        clean_but(
            &broker("<bean xmlns=\"urn:x\">hello</bean>"),
            vec![el("bean")],
        );
    }

    fn clean_but(input: &str, expected: Vec<Warning>) -> String {
        let (out, warnings) = run(input);
        assert_eq!(warnings, expected, "{input}");
        out
    }

    #[test]
    fn size_and_depth_are_capped() {
        let comment = "x".repeat(MAX_INPUT_BYTES);
        assert!(rejected(&broker(&format!("<!--{comment}-->"))).contains("256 KiB"));
        let deep = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH + 1),
            "</a>".repeat(MAX_DEPTH + 1)
        );
        assert!(rejected(&broker(&deep)).contains("deeper"));
        let fine = format!(
            "{}{}",
            "<a>".repeat(MAX_DEPTH - 2),
            "</a>".repeat(MAX_DEPTH - 2)
        );
        clean_but(&broker(&fine), vec![el("a")]);
    }

    #[test]
    fn hostile_values_are_escaped() {
        let out = clean(&broker(
            "<destinations><queue physicalName=\"a&quot;b&lt;c&amp;d&gt;e&apos;f&#9;g&#10;h\"/></destinations>",
        ));
        assert!(
            out.contains("physicalName=\"a&quot;b&lt;c&amp;d>e'f&#9;g&#10;h\""),
            "{out}"
        );
        let doc = roxmltree::Document::parse(&out).unwrap();
        let queue = doc.descendants().find(|n| n.has_tag_name("queue")).unwrap();
        assert_eq!(queue.attribute("physicalName"), Some("a\"b<c&d>e'f\tg\nh"));
        assert_eq!(clean(&out), out);
    }

    #[test]
    fn network_connectors_reach_only_other_brokers() {
        for ok in [
            "static:(ssl://b-1.mq.us-east-2.amazonaws.com:61617)",
            "static:(tcp://10.0.0.5:61616,ssl://broker-2.internal:61617)?maxReconnectAttempts=0",
            "masterslave:(ssl://a.example.com:61617, ssl://b.example.com:61617)",
            "static:(ssl://a.example.com:61617?wireFormat.maxInactivityDuration=30000)",
        ] {
            let input = broker(&format!(
                "<networkConnectors><networkConnector name=\"n\" uri=\"{ok}\"/></networkConnectors>"
            ));
            clean(&input);
        }
        for bad in [
            "vm://localhost",
            "static:(vm://localhost?create=true)",
            "static:(file:///etc/passwd)",
            "static:(tcp://127.0.0.1:61616)",
            "static:(tcp://localhost:61616)",
            "static:(tcp://169.254.169.254:80)",
            "static:(tcp://0.0.0.0:61616)",
            "static:(http://example.com:80)",
            "static:(tcp://example.com)",
            "static:(tcp://example.com:0)",
            "static:(tcp://example.com:99999)",
            "static:(tcp://user@example.com:61616)",
            "static:(tcp://example.com:61616?x=${y})",
            "static:(tcp://example.com:61616?x=a/b)",
            "static:(tcp://example.com:61616)garbage",
            "multicast://default",
            "static:()",
            "static:(tcp://1.2.3:61616)",
        ] {
            let input = broker(&format!(
                "<networkConnectors><networkConnector name=\"n\" uri=\"{bad}\"/><networkConnector name=\"m\" uri=\"static:(ssl://ok.example.com:61617)\"/></networkConnectors>"
            ));
            let out = clean_but(
                &input,
                vec![value("networkConnector", "uri"), el("networkConnector")],
            );
            assert!(
                !out.contains("name=\"n\"") && out.contains("name=\"m\""),
                "{bad}: {out}"
            );
        }
        // Berth owns the local end of a bridge; bean references have nothing to refer to.
        let out = clean_but(
            &broker(
                "<networkConnectors><networkConnector uri=\"static:(ssl://a.example.com:61617)\" \
                 localUri=\"vm://other?create=true\" bridgeFactory=\"#f\" brokerURL=\"vm://x\">\
                 <localUri><bean xmlns=\"urn:x\"/></localUri></networkConnector></networkConnectors>",
            ),
            vec![
                attr("networkConnector", "bridgeFactory"),
                value("networkConnector", "brokerURL"),
                attr("networkConnector", "localUri"),
                el("localUri"),
            ],
        );
        assert!(
            out.contains("<networkConnector uri=\"static:(ssl://a.example.com:61617)\"/>"),
            "{out}"
        );
        // No URI at all: the connector cannot start.
        clean_but(
            &broker("<networkConnectors><networkConnector name=\"n\"/></networkConnectors>"),
            vec![el("networkConnector")],
        );
    }

    #[test]
    fn transport_connectors_keep_only_the_openwire_flags() {
        let out = clean_but(
            &broker(
                "<transportConnectors>\
                 <transportConnector name=\"openwire\" uri=\"tcp://0.0.0.0:61616\" updateClusterClients=\"true\"/>\
                 <transportConnector name=\"stomp\" uri=\"stomp://0.0.0.0:61613\"/>\
                 </transportConnectors>",
            ),
            vec![
                attr("transportConnector", "uri"),
                value("transportConnector", "name"),
                attr("transportConnector", "uri"),
                el("transportConnector"),
            ],
        );
        assert!(
            out.contains("<transportConnector name=\"openwire\" updateClusterClients=\"true\"/>"),
            "{out}"
        );
        assert!(!out.contains("stomp") && !out.contains("0.0.0.0"), "{out}");
    }

    #[test]
    fn typed_values_are_checked() {
        let (out, warnings) = run(&broker(
            "<persistenceAdapter><kahaDB checkpointInterval=\"100\" indexWriteBatchSize=\"2000\" \
             journalDiskSyncStrategy=\"sometimes\" directory=\"/tmp\"/></persistenceAdapter>\
             <systemUsage><systemUsage sendFailIfNoSpaceAfterTimeout=\"soon\"><memoryUsage>\
             <memoryUsage percentOfJvmHeap=\"90\" limit=\"1 gb\"/></memoryUsage></systemUsage></systemUsage>\
             <plugins><redeliveryPlugin><redeliveryPolicyMap><redeliveryPolicyMap><defaultEntry>\
             <redeliveryPolicy backOffMultiplier=\"NaN\" collisionAvoidancePercent=\"40000\" maximumRedeliveries=\"-1\"/>\
             </defaultEntry></redeliveryPolicyMap></redeliveryPolicyMap></redeliveryPlugin></plugins>",
        ));
        assert_eq!(
            warnings,
            vec![
                value("kahaDB", "checkpointInterval"),
                attr("kahaDB", "directory"),
                value("kahaDB", "journalDiskSyncStrategy"),
                value("systemUsage", "sendFailIfNoSpaceAfterTimeout"),
                attr("memoryUsage", "limit"),
                value("memoryUsage", "percentOfJvmHeap"),
                value("redeliveryPolicy", "backOffMultiplier"),
                value("redeliveryPolicy", "collisionAvoidancePercent"),
            ]
        );
        assert!(
            out.contains("<kahaDB indexWriteBatchSize=\"2000\"/>"),
            "{out}"
        );
        assert!(
            out.contains("<redeliveryPolicy maximumRedeliveries=\"-1\"/>"),
            "{out}"
        );
        assert!(out.contains("<memoryUsage/>"), "{out}");

        assert!(
            valid(Size, "64mb") && valid(Size, "1024") && valid(Size, "2GB") && valid(Size, "1k")
        );
        assert!(
            !valid(Size, "") && !valid(Size, "mb") && !valid(Size, "1 mb") && !valid(Size, "-1mb")
        );
        assert!(valid(Double, "1.5") && valid(Double, "2") && !valid(Double, "inf"));
        assert!(valid(Int, "-1") && !valid(Int, "2147483648") && valid(Long, "2147483648"));
        assert!(
            !valid(Bool, "True") && !valid(Bool, "1") && !valid(Str, "${x}") && !valid(Str, "#{x}")
        );
        assert!(!valid(Str, &"x".repeat(MAX_VALUE_CHARS + 1)));
    }

    #[test]
    fn single_valued_collections_keep_one_entry() {
        let out = clean_but(
            &broker(
                "<destinationPolicy><policyMap><policyEntries><policyEntry queue=\"&gt;\">\
                 <deadLetterStrategy><individualDeadLetterStrategy/><discarding/></deadLetterStrategy>\
                 <deadLetterStrategy><discarding/></deadLetterStrategy>\
                 </policyEntry></policyEntries></policyMap></destinationPolicy>",
            ),
            vec![el("discarding"), el("deadLetterStrategy")],
        );
        assert!(
            out.contains("<individualDeadLetterStrategy/>") && !out.contains("discarding"),
            "{out}"
        );
    }

    #[test]
    fn namespace_forms_are_normalized() {
        let prefixed = clean(&format!(
            "<amq:broker xmlns:amq=\"{ACTIVEMQ_CORE_NS}\" persistent=\"true\"><amq:destinations>\
             <amq:queue physicalName=\"q\"/></amq:destinations></amq:broker>"
        ));
        let plain = clean(
            "<broker persistent=\"true\"><destinations><queue physicalName=\"q\"/></destinations></broker>",
        );
        let expected = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<broker xmlns=\"{ACTIVEMQ_CORE_NS}\" persistent=\"true\">\n  \
             <destinations>\n    <queue physicalName=\"q\"/>\n  </destinations>\n</broker>\n"
        );
        assert_eq!(prefixed, expected);
        assert_eq!(plain, expected);
        // Inside a namespaced broker, an element without the namespace is foreign.
        clean_but(
            &broker("<destinations xmlns=\"\"/>"),
            vec![el("destinations")],
        );
        // A byte-order mark and leading blank lines are tolerated.
        assert_eq!(
            clean(&format!("\u{feff}\n  {}", broker(""))),
            clean(&broker(""))
        );
    }

    #[test]
    fn every_warning_is_returned_for_the_caller_to_truncate() {
        let attrs: String = (0..30).map(|i| format!(" bogus{i:02}=\"1\"")).collect();
        let (out, warnings) = run(&format!("<broker{attrs}/>"));
        assert_eq!(warnings.len(), 30);
        assert_eq!(warnings[0], attr("broker", "bogus00"));
        assert_eq!(warnings[29], attr("broker", "bogus29"));
        assert!(
            out.ends_with(&format!("<broker xmlns=\"{ACTIVEMQ_CORE_NS}\"/>\n")),
            "{out}"
        );
    }

    #[test]
    fn rabbitmq_warnings_convert() {
        let (_, warnings) = rabbitmq_conf::sanitize("bogus = 1\nheartbeat = x\n").unwrap();
        let converted: Vec<Warning> = warnings.into_iter().map(Warning::from).collect();
        assert_eq!(
            converted,
            vec![
                el("bogus"),
                Warning {
                    reason: WarningReason::InvalidAttributeValueRemoved,
                    element_name: "heartbeat".into(),
                    attribute_name: None,
                },
            ]
        );
        assert_eq!(
            converted[1].reason.as_wire(),
            "INVALID_ATTRIBUTE_VALUE_REMOVED"
        );
    }
}
