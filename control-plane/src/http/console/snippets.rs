//! Ready-to-paste client snippets for a broker page, filled with the broker's real
//! endpoints and a user name. Never a password: snippets read it from an environment
//! variable and show a placeholder.

/// One snippet: a title, its language (for the `data-lang` attribute) and the code.
#[derive(Clone, Debug)]
pub struct Snippet {
    pub title: &'static str,
    pub lang: &'static str,
    pub code: String,
}

fn first<'a>(endpoints: &'a [String], scheme: &str) -> Option<&'a str> {
    let prefix = format!("{scheme}://");
    endpoints
        .iter()
        .find(|e| e.starts_with(&prefix))
        .map(String::as_str)
}

fn host_port(endpoint: &str) -> (&str, &str) {
    let rest = endpoint.split("://").nth(1).unwrap_or(endpoint);
    let rest = rest.split('/').next().unwrap_or(rest);
    rest.rsplit_once(':').unwrap_or((rest, ""))
}

/// The snippets for a broker of `engine` whose instances serve `instances` (one list of
/// endpoints per instance), for `user`, with the aws CLI pointed at `api_url`.
pub fn snippets(
    engine: &str,
    broker_id: &str,
    instances: &[Vec<String>],
    user: &str,
    api_url: &str,
) -> Vec<Snippet> {
    let all: Vec<String> = instances.iter().flatten().cloned().collect();
    let mut out = Vec::new();
    if engine == "RABBITMQ" {
        if let Some(amqp) = first(&all, "amqps").or_else(|| first(&all, "amqp")) {
            let (host, port) = host_port(amqp);
            let tls = amqp.starts_with("amqps://");
            out.push(Snippet {
                title: "Python (pika)",
                lang: "python",
                code: format!(
                    "import os, ssl, pika\n\
                     params = pika.ConnectionParameters(\n    host=\"{host}\", port={port},\n    credentials=pika.PlainCredentials(\"{user}\", os.environ[\"BROKER_PASSWORD\"]),{}\n)\n\
                     connection = pika.BlockingConnection(params)\n\
                     channel = connection.channel()\n\
                     channel.queue_declare(queue=\"hello\")\n\
                     channel.basic_publish(exchange=\"\", routing_key=\"hello\", body=b\"Hello\")\n",
                    if tls {
                        "\n    ssl_options=pika.SSLOptions(ssl.create_default_context(cafile=\"ca.pem\")),"
                    } else {
                        ""
                    }
                ),
            });
            let url_user = amqp.replacen("://", &format!("://{user}:<password>@"), 1);
            out.push(Snippet {
                title: "Node.js (amqplib)",
                lang: "javascript",
                code: format!(
                    "const amqp = require(\"amqplib\");\n\
                     const fs = require(\"fs\");\n\
                     const url = \"{}\".replace(\"<password>\", encodeURIComponent(process.env.BROKER_PASSWORD));\n\
                     const conn = await amqp.connect(url, {{ ca: [fs.readFileSync(\"ca.pem\")] }});\n\
                     const ch = await conn.createChannel();\n\
                     await ch.assertQueue(\"hello\");\n\
                     ch.sendToQueue(\"hello\", Buffer.from(\"Hello\"));\n",
                    url_user
                ),
            });
            out.push(Snippet {
                title: "Rust (lapin)",
                lang: "rust",
                code: format!(
                    "let password = std::env::var(\"BROKER_PASSWORD\")?;\n\
                     let uri = format!(\"{}\", password);\n\
                     let conn = lapin::Connection::connect(&uri, lapin::ConnectionProperties::default()).await?;\n\
                     let channel = conn.create_channel().await?;\n",
                    amqp.replacen("://", &format!("://{user}:{{}}@"), 1)
                ),
            });
        }
        if let Some(mqtt) = first(&all, "mqtt+ssl").or_else(|| first(&all, "mqtt")) {
            let (host, port) = host_port(mqtt);
            out.push(Snippet {
                title: "Python MQTT (paho)",
                lang: "python",
                code: format!(
                    "import os\nimport paho.mqtt.client as mqtt\n\
                     client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)\n\
                     client.username_pw_set(\"{user}\", os.environ[\"BROKER_PASSWORD\"])\n{}\
                     client.connect(\"{host}\", {port})\n\
                     client.publish(\"hello/world\", \"Hello\")\n",
                    if mqtt.starts_with("mqtt+ssl://") {
                        "client.tls_set(ca_certs=\"ca.pem\")\n"
                    } else {
                        ""
                    }
                ),
            });
        }
    } else {
        let openwire: Vec<&str> = instances
            .iter()
            .filter_map(|eps| first(eps, "ssl").or_else(|| first(eps, "tcp")))
            .collect();
        if !openwire.is_empty() {
            out.push(Snippet {
                title: "Java (JMS, OpenWire)",
                lang: "java",
                code: format!(
                    "// Trust ca.pem: keytool -importcert -file ca.pem -keystore truststore.jks\n\
                     ActiveMQSslConnectionFactory factory =\n    new ActiveMQSslConnectionFactory(\"failover:({})\");\n\
                     factory.setTrustStore(\"truststore.jks\");\n\
                     factory.setTrustStorePassword(\"changeit\");\n\
                     Connection connection = factory.createConnection(\"{user}\", System.getenv(\"BROKER_PASSWORD\"));\n\
                     connection.start();\n",
                    openwire.join(",")
                ),
            });
        }
        if let Some(stomp) = first(&all, "stomp+ssl").or_else(|| first(&all, "stomp")) {
            let (host, port) = host_port(stomp);
            out.push(Snippet {
                title: "Python STOMP (stomp.py)",
                lang: "python",
                code: format!(
                    "import os, stomp\n\
                     conn = stomp.Connection([(\"{host}\", {port})])\n{}\
                     conn.connect(\"{user}\", os.environ[\"BROKER_PASSWORD\"], wait=True)\n\
                     conn.send(destination=\"/queue/hello\", body=\"Hello\")\n",
                    if stomp.starts_with("stomp+ssl://") {
                        "conn.set_ssl(for_hosts=[(\"".to_owned()
                            + host
                            + "\", "
                            + port
                            + ")], ca_certs=\"ca.pem\")\n"
                    } else {
                        String::new()
                    }
                ),
            });
        }
    }
    out.push(Snippet {
        title: "aws CLI",
        lang: "shell",
        code: format!("aws mq describe-broker --broker-id {broker_id} --endpoint-url {api_url}\n"),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rabbitmq_snippets_name_the_endpoint_and_user_but_no_password() {
        let s = snippets(
            "RABBITMQ",
            "b-1",
            &[vec!["amqps://h:5671".into(), "mqtt+ssl://h:8883".into()]],
            "app",
            "http://127.0.0.1:8080",
        );
        let all: String = s.iter().map(|s| s.code.clone()).collect();
        assert!(all.contains("host=\"h\", port=5671"), "{all}");
        assert!(all.contains("amqps://app:<password>@h:5671"), "{all}");
        assert!(all.contains("client.connect(\"h\", 8883)"), "{all}");
        assert!(
            all.contains("--endpoint-url http://127.0.0.1:8080"),
            "{all}"
        );
    }

    #[test]
    fn an_activemq_pair_gets_a_failover_url() {
        let s = snippets(
            "ACTIVEMQ",
            "b-1",
            &[vec!["ssl://a:61617".into()], vec!["ssl://b:61618".into()]],
            "app",
            "http://x",
        );
        assert!(s[0].code.contains("failover:(ssl://a:61617,ssl://b:61618)"));
    }
}
