//! Braid's spans ([`braid_ports::Span`]) exported with OpenTelemetry.
//!
//! [`OtelTraces`] turns each span into the SDK's [`SpanData`] — with the ids Braid
//! derives (`braid_engine::trace`), so no span is kept open — buffers it, and hands
//! the buffer to an exporter: about a second after the first span, and at every
//! [`TraceSink::flush`] (a Lambda invocation's end, a local process's exit). The
//! exporter is OTLP over HTTP ([`from_env`]), configured by the standard variables
//! (`OTEL_EXPORTER_OTLP_ENDPOINT` or `..._TRACES_ENDPOINT`, `..._HEADERS`,
//! `..._TIMEOUT`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`).
//!
//! Exporting never fails a run: an export that fails is logged and its spans dropped,
//! and spans beyond [`MAX_PENDING`] waiting for an exporter that cannot keep up are
//! dropped too.

use async_trait::async_trait;
use braid_ports::{Span, SpanValue, TraceSink};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// The most spans kept waiting for an export.
pub const MAX_PENDING: usize = 4096;

/// How long after a span the buffer is sent, in a process that is not told to flush.
const SEND_AFTER: Duration = Duration::from_secs(1);

/// The longest a flush waits for its export: it ends a Lambda invocation (an API
/// answer, a batch), which a slow collector must not hold up. Spans it cuts short
/// are dropped.
pub const FLUSH_LIMIT: Duration = Duration::from_secs(2);

/// The OTLP exporter the environment configures, if it configures one: an endpoint is
/// set (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), and
/// neither `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none` turns it off.
pub fn from_env() -> Result<Option<Arc<dyn TraceSink>>, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or(var("OTEL_EXPORTER_OTLP_ENDPOINT"));
    let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
    if endpoint.is_none() || disabled {
        return Ok(None);
    }
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
        .map_err(|e| format!("cannot set up the OTLP trace exporter: {e}"))?;
    Ok(Some(Arc::new(OtelTraces::new(exporter, resource()))))
}

/// The resource Braid's spans come from: `service.name` is `braid` unless
/// `OTEL_SERVICE_NAME` says otherwise; on Lambda, the function and region too.
pub fn resource() -> Resource {
    let mut builder = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        builder = builder.with_service_name("braid");
    }
    let aws = [
        ("AWS_LAMBDA_FUNCTION_NAME", "faas.name"),
        ("AWS_REGION", "cloud.region"),
    ];
    for (var, key) in aws {
        if let Ok(value) = std::env::var(var) {
            builder = builder.with_attribute(KeyValue::new(key, value));
        }
    }
    builder.build()
}

/// Buffers spans and hands them to exporter `E`.
pub struct OtelTraces<E> {
    inner: Arc<Inner<E>>,
}

struct Inner<E> {
    exporter: E,
    scope: InstrumentationScope,
    pending: Mutex<Vec<SpanData>>,
    /// Spans dropped since the last send, the buffer being full: told once per send,
    /// not once per span.
    dropped: AtomicU64,
    /// One export at a time: an exporter is never called concurrently.
    sending: tokio::sync::Mutex<()>,
    /// A delayed send is on its way.
    scheduled: AtomicBool,
}

impl<E: SpanExporter + 'static> OtelTraces<E> {
    pub fn new(mut exporter: E, resource: Resource) -> Self {
        exporter.set_resource(&resource);
        OtelTraces {
            inner: Arc::new(Inner {
                exporter,
                scope: InstrumentationScope::builder("braid")
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .build(),
                pending: Mutex::new(Vec::new()),
                dropped: AtomicU64::new(0),
                sending: tokio::sync::Mutex::new(()),
                scheduled: AtomicBool::new(false),
            }),
        }
    }
}

impl<E> Inner<E> {
    fn pending(&self) -> MutexGuard<'_, Vec<SpanData>> {
        // A list of spans stays whole even if a holder panicked.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<E: SpanExporter + 'static> Inner<E> {
    async fn send(&self) {
        let _one = self.sending.lock().await;
        let dropped = self.dropped.swap(0, Ordering::AcqRel);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                max = MAX_PENDING,
                "spans were dropped: too many waited to be exported"
            );
        }
        let batch = std::mem::take(&mut *self.pending());
        if batch.is_empty() {
            return;
        }
        let count = batch.len();
        if let Err(e) = self.exporter.export(batch).await {
            tracing::warn!(error = %e, spans = count, "exporting spans failed; they are dropped");
        }
    }
}

#[async_trait]
impl<E: SpanExporter + 'static> TraceSink for OtelTraces<E> {
    fn record(&self, span: Span) {
        let data = span_data(span, &self.inner.scope);
        {
            let mut pending = self.inner.pending();
            if pending.len() >= MAX_PENDING {
                self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            pending.push(data);
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !self.inner.scheduled.swap(true, Ordering::AcqRel) {
            let inner = self.inner.clone();
            runtime.spawn(async move {
                tokio::time::sleep(SEND_AFTER).await;
                inner.scheduled.store(false, Ordering::Release);
                inner.send().await;
            });
        }
    }

    async fn flush(&self) {
        if tokio::time::timeout(FLUSH_LIMIT, self.inner.send())
            .await
            .is_err()
        {
            tracing::warn!(limit = ?FLUSH_LIMIT, "exporting spans took too long; they are dropped");
        }
    }
}

/// The SDK's form of `span`: a finished span with Braid's ids and times.
fn span_data(span: Span, scope: &InstrumentationScope) -> SpanData {
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(span.trace.0),
            SpanId::from_bytes(span.id.0),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: span
            .parent
            .map_or(SpanId::INVALID, |p| SpanId::from_bytes(p.0)),
        parent_span_is_remote: false,
        span_kind: if span.calls_out {
            SpanKind::Client
        } else {
            SpanKind::Internal
        },
        name: Cow::Owned(span.name),
        start_time: SystemTime::from(span.start),
        end_time: SystemTime::from(span.end),
        attributes: span
            .attributes
            .into_iter()
            .map(|(key, value)| match value {
                SpanValue::Text(v) => KeyValue::new(key, v),
                SpanValue::Int(v) => KeyValue::new(key, v),
            })
            .collect(),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: match span.error {
            Some(message) => Status::error(message),
            None => Status::Unset,
        },
        instrumentation_scope: scope.clone(),
    }
}

#[cfg(test)]
mod tests;
