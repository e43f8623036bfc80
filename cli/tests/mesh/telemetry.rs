//! OpenTelemetry export (`[telemetry]`): two daemons export their spans over OTLP/HTTP to a
//! stand-in collector on loopback; a request to A (no node) relayed to B (a simulated node)
//! arrives as A's `request` span and B's `relay` span in one trace, B's span a child of A's; a
//! transaction's broadcast, which outlives its request, is A's `tx_broadcast` span in the same trace.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;
use rpcmesh_testnet::sim::{SimBackend, SimChain};
use serde_json::json;

use crate::failover::RpcClient;
use crate::support::*;

/// An exported span: the service that sent it and its ids.
#[derive(Debug, Clone)]
struct Exported {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
}

/// A collector that accepts OTLP/HTTP protobuf on POST /v1/traces and keeps every span.
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<Exported>>>,
    stop: tokio_util::sync::CancellationToken,
}

impl Collector {
    async fn start() -> Collector {
        let spans: Arc<Mutex<Vec<Exported>>> = Arc::default();
        let kept = spans.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: Bytes| {
                let kept = kept.clone();
                async move {
                    assert_eq!(
                        headers.get("content-type").and_then(|v| v.to_str().ok()),
                        Some("application/x-protobuf"),
                        "OTLP over HTTP with protobuf bodies"
                    );
                    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                        return axum::http::StatusCode::BAD_REQUEST;
                    };
                    let mut kept = kept.lock().unwrap();
                    for rs in request.resource_spans {
                        let service = rs
                            .resource
                            .iter()
                            .flat_map(|r| &r.attributes)
                            .find(|a| a.key == "service.name")
                            .and_then(|a| a.value.as_ref())
                            .map(|v| format!("{:?}", v.value))
                            .unwrap_or_default();
                        for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                            kept.push(Exported {
                                service: service.clone(),
                                name: span.name,
                                trace_id: span.trace_id,
                                span_id: span.span_id,
                                parent_span_id: span.parent_span_id,
                            });
                        }
                    }
                    axum::http::StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = tokio_util::sync::CancellationToken::new();
        let until = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(until.cancelled_owned()).await;
        });
        Collector { url, spans, stop }
    }

    fn spans(&self) -> Vec<Exported> {
        self.spans.lock().unwrap().clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_and_joined_across_a_relay() {
    let dir = tempfile::tempdir().unwrap();
    let net = "mesh-otlp";
    let collector = Collector::start().await;
    let chain = SimChain::with_history(1, 1000, 100);
    let sim = SimBackend::spawn(chain, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let sets = |service: &str| {
        let mut sets = sim_sets();
        // No path: the daemon adds /v1/traces.
        sets.push(format!("telemetry.otlp_endpoint={}", collector.url));
        sets.push(format!("telemetry.service_name={service}"));
        sets
    };
    let a = start(spec(dir.path(), "a", net, vec![], vec![], sets("rpcmesh-a"))).await;
    let boot = a.p2p_addr().await.unwrap();
    let b = start(spec(dir.path(), "b", net, vec![(1, sim.http_url())], vec![boot], sets("rpcmesh-b"))).await;
    wait("A to see B healthy", async || {
        provider(&peers(&a).await, &b.peer_id).is_some_and(|v| v["chains"][0]["health"] == "healthy")
    })
    .await;

    let client = RpcClient::at(format!("http://{}/1", a.gateway_addr));
    let answer = client.call("eth_getBlockByNumber", json!(["0x10", false])).await;
    assert!(answer.body.get("result").is_some(), "{}", answer.body);
    assert_eq!(answer.served_by, b.peer_id, "A has no node: B served it over the relay");

    // The batch exporter sends every few seconds: wait for A's request span and B's relay span.
    let joined = |spans: &[Exported]| {
        spans.iter().filter(|s| s.name == "request" && s.service.contains("rpcmesh-a")).find_map(|req| {
            spans
                .iter()
                .find(|s| {
                    s.name == "relay"
                        && s.service.contains("rpcmesh-b")
                        && s.trace_id == req.trace_id
                        && s.parent_span_id == req.span_id
                })
                .map(|relay| (req.clone(), relay.clone()))
        })
    };
    wait("A's request span and B's relay span in one trace", async || joined(&collector.spans()).is_some()).await;
    let (request, relay) = joined(&collector.spans()).unwrap();
    assert_eq!(request.trace_id.len(), 16);
    assert!(request.trace_id.iter().any(|b| *b != 0), "a real trace id");
    assert!(request.parent_span_id.is_empty(), "the request span is the trace's root");
    assert_ne!(relay.span_id, request.span_id);

    // A transaction: the broadcast runs in its own task, still in the request's trace, and the
    // relays it makes are its children.
    let sent = client.call("eth_sendRawTransaction", json!(["0x02f86c0180843b9aca00"])).await;
    assert!(sent.body.get("result").is_some(), "{}", sent.body);
    let broadcast = |spans: &[Exported]| {
        spans.iter().filter(|s| s.name == "tx_broadcast" && s.service.contains("rpcmesh-a")).find_map(|tx| {
            let request = spans
                .iter()
                .find(|s| s.name == "request" && s.trace_id == tx.trace_id && s.span_id == tx.parent_span_id)?;
            let relay = spans.iter().find(|s| {
                s.name == "relay"
                    && s.service.contains("rpcmesh-b")
                    && s.trace_id == tx.trace_id
                    && s.parent_span_id == tx.span_id
            })?;
            Some((request.clone(), tx.clone(), relay.clone()))
        })
    };
    wait("A's broadcast span in its request's trace, B's relay span its child", async || {
        broadcast(&collector.spans()).is_some()
    })
    .await;
    drop((a, b));
}
