//! Every AWS request the backend makes, counted by service and operation through an SDK
//! interceptor, and priced at us-east-1 list prices.

use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemInput;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemInput;
use aws_sdk_dynamodb::operation::put_item::PutItemInput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemInput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_eventbridge::operation::put_events::PutEventsInput;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use braid_aws::backend::AwsClients;
use braid_aws::store as ds;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

/// Requests so far: (service, operation) → count, and DynamoDB write request units.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<Mutex<Counts>>);

#[derive(Debug, Clone, Default)]
struct Counts {
    requests: BTreeMap<(String, String), u64>,
    /// A transaction of n items costs 2n write units; a batch write n; each index
    /// write a write makes costs one more (see [`index_writes`]).
    dynamodb_write_units: u64,
    /// EventBridge bills each entry of a PutEvents, not the request.
    eventbridge_entries: u64,
    /// Run items seen leaving `active_runs`: their later writes no longer write to it.
    inactive: Inactive,
}

/// Partition keys of the run items that left `active_runs`.
type Inactive = std::collections::HashSet<String>;

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    /// Before serialization, the operation's metadata is in the config bag (it is not
    /// yet before execution).
    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(m) = cfg.load::<Metadata>() else {
            return Ok(());
        };
        let input = context.input();
        let empty = HashMap::new();
        let mut counts = self.0.lock().unwrap();
        let inactive = &mut counts.inactive;
        let units = match m.name() {
            "PutItem" => input.downcast_ref::<PutItemInput>().map_or(0, |p| {
                ItemWrite::Put(p.item().unwrap_or(&empty)).units(1, inactive)
            }),
            "UpdateItem" => input.downcast_ref::<UpdateItemInput>().map_or(0, |u| {
                ItemWrite::Update {
                    key: u.key().unwrap_or(&empty),
                    expression: u.update_expression().unwrap_or_default(),
                    names: u.expression_attribute_names(),
                    values: u.expression_attribute_values(),
                }
                .units(1, inactive)
            }),
            "DeleteItem" => input.downcast_ref::<DeleteItemInput>().map_or(0, |d| {
                ItemWrite::Delete(d.key().unwrap_or(&empty)).units(1, inactive)
            }),
            // A transaction's writes cost twice as much.
            "TransactWriteItems" => {
                input
                    .downcast_ref::<TransactWriteItemsInput>()
                    .map_or(0, |t| {
                        t.transact_items()
                            .iter()
                            .map(|i| {
                                let w = if let Some(p) = i.put() {
                                    ItemWrite::Put(p.item())
                                } else if let Some(u) = i.update() {
                                    ItemWrite::Update {
                                        key: u.key(),
                                        expression: u.update_expression(),
                                        names: u.expression_attribute_names(),
                                        values: u.expression_attribute_values(),
                                    }
                                } else if let Some(d) = i.delete() {
                                    ItemWrite::Delete(d.key())
                                } else {
                                    // A condition check is billed as a write.
                                    return 2;
                                };
                                w.units(2, inactive)
                            })
                            .sum()
                    })
            }
            "BatchWriteItem" => input.downcast_ref::<BatchWriteItemInput>().map_or(0, |b| {
                b.request_items().map_or(0, |r| {
                    r.values()
                        .flatten()
                        .map(|w| match (w.put_request(), w.delete_request()) {
                            (Some(p), _) => ItemWrite::Put(p.item()).units(1, inactive),
                            (_, Some(d)) => ItemWrite::Delete(d.key()).units(1, inactive),
                            _ => 1,
                        })
                        .sum()
                })
            }),
            _ => 0,
        };
        let entries = match m.name() {
            "PutEvents" => input
                .downcast_ref::<PutEventsInput>()
                .map_or(0, |p| p.entries().len() as u64),
            _ => 0,
        };
        counts.eventbridge_entries += entries;
        *counts
            .requests
            .entry((m.service().to_string(), m.name().to_string()))
            .or_default() += 1;
        counts.dynamodb_write_units += units;
        Ok(())
    }
}

impl RequestCounter {
    /// The backend's clients with this counter on every one.
    pub fn clients(&self, sdk: &aws_config::SdkConfig) -> AwsClients {
        let plain = AwsClients::new(sdk);
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                plain
                    .dynamodb
                    .config()
                    .to_builder()
                    .interceptor(self.clone())
                    .build(),
            ),
            sqs: aws_sdk_sqs::Client::from_conf(
                plain
                    .sqs
                    .config()
                    .to_builder()
                    .interceptor(self.clone())
                    .build(),
            ),
            s3: aws_sdk_s3::Client::from_conf(
                plain
                    .s3
                    .config()
                    .to_builder()
                    .interceptor(self.clone())
                    .build(),
            ),
            eventbridge: aws_sdk_eventbridge::Client::from_conf(
                plain
                    .eventbridge
                    .config()
                    .to_builder()
                    .interceptor(self.clone())
                    .build(),
            ),
            lambda: aws_sdk_lambda::Client::from_conf(
                plain
                    .lambda
                    .config()
                    .to_builder()
                    .interceptor(self.clone())
                    .build(),
            ),
            // Secrets are read once per warm function, not per step: not counted.
            ssm: plain.ssm,
            secrets_manager: plain.secrets_manager,
        }
    }

    /// Requests by (service, operation) so far.
    pub fn requests(&self) -> BTreeMap<(String, String), u64> {
        self.0.lock().unwrap().requests.clone()
    }

    /// EventBridge entries put so far.
    pub fn eventbridge_entries(&self) -> u64 {
        self.0.lock().unwrap().eventbridge_entries
    }

    /// DynamoDB write request units so far.
    pub fn dynamodb_write_units(&self) -> u64 {
        self.0.lock().unwrap().dynamodb_write_units
    }

    pub fn reset(&self) {
        *self.0.lock().unwrap() = Counts::default();
    }
}

/// One item written, as the request says.
enum ItemWrite<'a> {
    Put(&'a HashMap<String, AttributeValue>),
    Update {
        key: &'a HashMap<String, AttributeValue>,
        expression: &'a str,
        names: Option<&'a HashMap<String, String>>,
        values: Option<&'a HashMap<String, AttributeValue>>,
    },
    Delete(&'a HashMap<String, AttributeValue>),
}

impl ItemWrite<'_> {
    /// Write units billed: `factor` (2 in a transaction) per started KB of the item,
    /// plus its index writes, each a KB of the item for an index projecting every
    /// attribute and one unit for the keys-only one. An update's size is its key and
    /// the values it sets: the store's step writes set every attribute, so for them it
    /// is the item's; for a run's partial updates it is less than the item.
    fn units(&self, factor: u64, inactive: &mut Inactive) -> u64 {
        let kb = |bytes: usize| (bytes as u64).div_ceil(1024).max(1);
        let size = match self {
            ItemWrite::Put(item) | ItemWrite::Delete(item) => item_size(item),
            ItemWrite::Update { key, values, .. } => {
                item_size(key) + values.map_or(0, |v| v.values().map(value_size).sum())
            }
        };
        let (all, keys_only) = index_writes(self, inactive);
        if let Some(pk) = self.leaves_active() {
            inactive.insert(pk);
        }
        factor * kb(size) + all * kb(size) + keys_only
    }
}

impl ItemWrite<'_> {
    /// The run item's partition key when this write takes it out of `active_runs`.
    fn leaves_active(&self) -> Option<String> {
        let ItemWrite::Update {
            key,
            expression,
            names,
            ..
        } = self
        else {
            return None;
        };
        let (_, remove) = expression.split_once("REMOVE")?;
        let removed = remove
            .split(',')
            .map(|t| real_name(names, t))
            .any(|n| n == ds::ACTIVE_PK);
        let pk = key.get(ds::PK)?.as_s().ok()?;
        (removed && is_run(key)).then(|| pk.clone())
    }
}

/// The attribute an expression token stands for.
fn real_name(names: &Option<&HashMap<String, String>>, token: &str) -> String {
    let token = token.trim();
    names
        .and_then(|n| n.get(token))
        .cloned()
        .unwrap_or_else(|| token.to_string())
}

fn is_run(key: &HashMap<String, AttributeValue>) -> bool {
    key.get(ds::SK)
        .and_then(|v| v.as_s().ok())
        .is_some_and(|s| s == "RUN")
}

/// An item's size as DynamoDB counts it: each attribute's name and value.
fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len() / 2 + 1,
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::L(l) => 3 + l.iter().map(|x| 1 + value_size(x)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, x)| 1 + k.len() + value_size(x))
                .sum::<usize>()
        }
        AttributeValue::Ss(ss) => ss.iter().map(String::len).sum(),
        _ => 1,
    }
}

/// The table's indexes (as `infra/template.yaml` declares them): partition key
/// attribute, and whether every attribute is projected.
const INDEXES: [(&str, bool); 5] = [
    (ds::WF_PK, false),
    (ds::ALL_PK, false),
    (ds::ACTIVE_PK, true),
    (ds::QUEUED_PK, true),
    (ds::TIMER_PK, false),
];

/// The index writes a base-table write makes, which DynamoDB bills as writes of their
/// own: one per index an item enters or leaves, and one per index projecting every
/// attribute that holds the item while other attributes change. From the requests
/// alone, so an upper bound: a removal is taken to remove something there (the store
/// names an index key in a removal only when the item may carry it), and a run item
/// is taken to sit in `by_workflow`, `all_runs` and `active_runs` until a write was
/// seen taking it out of `active_runs` (`inactive`). Run items are the only ones in
/// the all-attribute indexes.
fn index_writes(w: &ItemWrite, inactive: &Inactive) -> (u64, u64) {
    let (mut all, mut keys_only) = (0, 0);
    for (_, projects_all) in INDEXES
        .iter()
        .filter(|(pk, all)| touches(w, pk, *all, inactive))
    {
        match projects_all {
            true => all += 1,
            false => keys_only += 1,
        }
    }
    (all, keys_only)
}

/// Whether `w` writes to the index keyed by `pk`.
fn touches(w: &ItemWrite, pk: &str, projects_all: bool, inactive: &Inactive) -> bool {
    // The indexes a run item sits in while it is active.
    let holds_run = |key: &HashMap<String, AttributeValue>| {
        let left = pk == ds::ACTIVE_PK
            && key
                .get(ds::PK)
                .and_then(|v| v.as_s().ok())
                .is_some_and(|p| inactive.contains(p));
        is_run(key) && [ds::WF_PK, ds::ALL_PK, ds::ACTIVE_PK].contains(&pk) && !left
    };
    match w {
        ItemWrite::Put(item) => item.contains_key(pk),
        ItemWrite::Delete(key) => holds_run(key),
        ItemWrite::Update {
            key,
            expression,
            names,
            ..
        } => {
            let (set, remove) = match expression.find("REMOVE") {
                Some(i) => (&expression[..i], &expression[i + "REMOVE".len()..]),
                None => (*expression, ""),
            };
            let mut named = set
                .trim_start()
                .trim_start_matches("SET")
                .split(',')
                .filter_map(|clause| clause.split('=').next())
                .chain(remove.split(','))
                .map(|t| real_name(names, t));
            named.any(|n| n == pk) || (projects_all && holds_run(key))
        }
    }
}

/// us-east-1 list prices in dollars per request (per million / 1e6).
mod price {
    /// DynamoDB on-demand: $0.625 per million write request units.
    pub const DYNAMODB_WRITE: f64 = 0.625e-6;
    /// DynamoDB on-demand: $0.125 per million read request units.
    pub const DYNAMODB_READ: f64 = 0.125e-6;
    /// SQS standard: $0.40 per million requests (of up to 64 KB).
    pub const SQS: f64 = 0.40e-6;
    /// S3 Standard PUT and GET.
    pub const S3_PUT: f64 = 5.0e-6;
    pub const S3_GET: f64 = 0.40e-6;
    /// EventBridge custom events: $1 per million.
    pub const EVENTBRIDGE: f64 = 1.0e-6;
    /// Lambda: $0.20 per million requests.
    pub const LAMBDA_REQUEST: f64 = 0.20e-6;
    /// Lambda arm64: $0.0000133334 per GB-second.
    pub const LAMBDA_ARM_GB_SECOND: f64 = 0.000_013_333_4;
}

/// What the requests of `steps` steps cost, per service.
#[derive(Debug, Clone, PartialEq)]
pub struct CostReport {
    pub steps: u64,
    /// (service, operation) → requests.
    pub requests: BTreeMap<(String, String), u64>,
    /// DynamoDB write request units (a transaction's items count twice).
    pub dynamodb_write_units: u64,
    /// EventBridge entries (billed each).
    pub eventbridge_entries: u64,
    /// Lambda invocations of the five functions (one per SQS batch or tick).
    pub invocations: u64,
    /// Their billed duration, in GB-seconds.
    pub gb_seconds: f64,
    /// SQS receives that found nothing. An event source mapping long-polls whether or
    /// not there is work (five pollers, 20 s waits: about 650,000 receives, $0.26, a
    /// month per queue), so these are a fixed cost, reported apart from the steps'.
    pub idle_receives: u64,
}

/// DynamoDB writes are priced by units, not requests.
fn is_dynamodb_write(op: &str) -> bool {
    matches!(
        op,
        "PutItem" | "UpdateItem" | "DeleteItem" | "BatchWriteItem" | "TransactWriteItems"
    )
}

/// The price of one request. DynamoDB writes (by units) and EventBridge (by entries)
/// are priced in [`CostReport::dollars`] instead.
fn request_price(service: &str, op: &str) -> f64 {
    match service {
        "DynamoDB" if is_dynamodb_write(op) => 0.0,
        "DynamoDB" => price::DYNAMODB_READ,
        "SQS" => price::SQS,
        "S3" if op == "PutObject" => price::S3_PUT,
        "S3" => price::S3_GET,
        _ => 0.0,
    }
}

impl CostReport {
    /// Dollars per service for the whole run.
    pub fn dollars(&self) -> BTreeMap<String, f64> {
        let mut out: BTreeMap<String, f64> = BTreeMap::new();
        for ((service, op), n) in &self.requests {
            *out.entry(service.clone()).or_default() += request_price(service, op) * *n as f64;
        }
        *out.entry("SQS".into()).or_default() -= self.idle_receives as f64 * price::SQS;
        *out.entry("EventBridge".into()).or_default() +=
            self.eventbridge_entries as f64 * price::EVENTBRIDGE;
        *out.entry("DynamoDB".into()).or_default() +=
            self.dynamodb_write_units as f64 * price::DYNAMODB_WRITE;
        *out.entry("lambda".into()).or_default() += self.invocations as f64 * price::LAMBDA_REQUEST
            + self.gb_seconds * price::LAMBDA_ARM_GB_SECOND;
        out
    }

    /// Orchestration cost per million steps.
    pub fn per_million_steps(&self) -> f64 {
        self.dollars().values().sum::<f64>() / self.steps as f64 * 1e6
    }

    /// The report as printed by the suite.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let per_step = |n: u64| n as f64 / self.steps as f64;
        let _ = writeln!(out, "AWS requests per step ({} steps):", self.steps);
        let mut by_service: BTreeMap<&str, u64> = BTreeMap::new();
        for ((service, op), n) in &self.requests {
            *by_service.entry(service).or_default() += n;
            let _ = writeln!(out, "  {service:<12} {op:<22} {:>6.2}", per_step(*n));
        }
        for (service, n) in by_service {
            let _ = writeln!(out, "  {service:<12} {:<22} {:>6.2}", "(all)", per_step(n));
        }
        let _ = writeln!(
            out,
            "  SQS          of which idle receives {:>6.2}  (a fixed cost of polling, not priced per step)",
            per_step(self.idle_receives)
        );
        let _ = writeln!(
            out,
            "  lambda       invocations            {:>6.2}  ({:.3} GB-s per step)",
            per_step(self.invocations),
            self.gb_seconds / self.steps as f64
        );
        let _ = writeln!(out, "cost per million steps (us-east-1 list prices):");
        for (service, d) in self.dollars() {
            let _ = writeln!(out, "  {service:<12} ${:.3}", d / self.steps as f64 * 1e6);
        }
        let _ = writeln!(out, "  total        ${:.3}", self.per_million_steps());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, &str)]) -> HashMap<String, AttributeValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), AttributeValue::S(v.to_string())))
            .collect()
    }

    #[test]
    fn index_writes_follow_what_a_write_adds_removes_or_changes() {
        let run_key = item(&[("pk", "RUN#r"), ("sk", "RUN")]);
        let step_key = item(&[("pk", "RUN#r"), ("sk", "STEP#a")]);
        let names = HashMap::from([
            ("#status".to_string(), "status".to_string()),
            ("#gsi3pk".to_string(), "gsi3pk".to_string()),
            ("#gsi4pk".to_string(), "gsi4pk".to_string()),
        ]);
        let new_run = item(&[
            ("pk", "RUN#r"),
            ("sk", "RUN"),
            ("gsi1pk", "WF#w"),
            ("gsi2pk", "RUNS#1"),
            ("gsi3pk", "ACTIVE#1"),
        ]);
        assert_eq!(
            index_writes(&ItemWrite::Put(&new_run), &Inactive::new()),
            (1, 2),
            "a new run enters three indexes, two of them keys only"
        );
        let finish = ItemWrite::Update {
            key: &run_key,
            expression: "SET #status = :v0 REMOVE #gsi3pk",
            names: Some(&names),
            values: None,
        };
        assert_eq!(
            index_writes(&finish, &Inactive::new()),
            (1, 0),
            "it leaves the active runs; the keys-only ones hold nothing that changed"
        );
        let mut inactive = Inactive::new();
        finish.units(1, &mut inactive);
        let close = ItemWrite::Update {
            key: &run_key,
            expression: "SET #status = :v0 REMOVE #gsi4pk",
            names: Some(&names),
            values: None,
        };
        assert_eq!(
            index_writes(&close, &inactive),
            (0, 1),
            "once out of the active runs, a run's writes write only the indexes they name"
        );
        let claim = ItemWrite::Update {
            key: &step_key,
            expression: "SET #status = :v0",
            names: Some(&names),
            values: None,
        };
        assert_eq!(
            index_writes(&claim, &Inactive::new()),
            (0, 0),
            "a step is in no index without a timer"
        );
        let retry = ItemWrite::Update {
            key: &step_key,
            expression: "SET #status = :v0, #gsi4pk = :v1",
            names: Some(&names),
            values: None,
        };
        assert_eq!(
            index_writes(&retry, &Inactive::new()),
            (0, 1),
            "a retry's timer enters the timers index"
        );
        let big = item(&[
            ("pk", "RUN#r"),
            ("sk", "STEP#a"),
            ("output", &"x".repeat(1500)),
        ]);
        assert_eq!(
            ItemWrite::Put(&big).units(2, &mut Inactive::new()),
            4,
            "a 1.5 KB item in a transaction costs two units per started KB"
        );
    }
}
