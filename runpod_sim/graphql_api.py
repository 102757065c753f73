"""RunPod's GraphQL control plane (``POST /graphql``), served from a real SDL schema by graphql-core.

WHY a real GraphQL engine instead of matching query strings: the official clients disagree on how they
send arguments. The runpod SDK inlines every argument as a literal (``saveEndpoint(input: {name: "x",
flashBootType: FLASHBOOT})``); runpodctl, FLASH and the MCP server send ``$input: EndpointInput!``
variables (runpod-api.md §2). Parsing, validating and executing real GraphQL accepts all of them and
rejects what RunPod would reject (unknown fields, wrong types) with GraphQL's own messages.

Semantics reproduced:

* ``myself`` exposes the account (``clientBalance``, ``currentSpendPerHr``, ``spendLimit``), the endpoints
  with EVERY field of §2.1 (unmodelled ones resolve to null) and their workers as ``pods`` (§2.2).
* ``saveEndpoint`` is NOT sparse: the simulator gets only the fields the caller provided and resets the
  omitted ones to server defaults (``SimOptions.saveendpoint_defaults``), like the live service.
* ``deleteEndpoint`` returns null and refuses while workersMin/workersMax are not both 0.
* Introspection is disabled, as in production (MCP server notes), so clients cannot come to depend on it.
* Request errors (syntax, validation, variable coercion) → HTTP 400; resolver errors → HTTP 200 with
  ``errors`` beside partial ``data``. Both as ``{"errors": [{"message": ...}], "data": ...}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLSchema,
    build_schema,
    execute,
    parse,
    specified_rules,
    validate,
)
from graphql.validation import NoSchemaIntrospectionCustomRule

from runpod_sim.engine import SimError, Simulator
from runpod_sim.serialize import graphql_endpoint
from watchdog.prices import PriceTable

SCHEMA_SDL = """
enum FlashBootType { OFF FLASHBOOT PRIORITY_FLASHBOOT }
enum Compliance { GDPR HIPAA SOC2 ISO_IEC_27001 }

type EnvironmentVariable { key: String value: String }
type NetworkVolume { id: String dataCenterId: String }
type EndpointNetworkVolumeId { networkVolumeId: String dataCenterId: String }

type PodMachine { gpuDisplayName: String location: String podHostId: String }
type Pod {
  id: String!
  name: String
  desiredStatus: String
  lastStatusChange: String
  machineId: String
  costPerHr: Float
  gpuCount: Int
  uptimeSeconds: Int
  podType: String
  imageName: String
  machine: PodMachine
}

type Endpoint {
  aiKey: String
  gpuIds: String
  id: String!
  idleTimeout: Int
  name: String
  networkVolumeId: String
  locations: String
  scalerType: String
  scalerValue: Int
  templateId: String
  type: String
  userId: String
  version: Int
  workersMax: Int
  workersMin: Int
  workersStandby: Int
  gpuCount: Int
  env: [EnvironmentVariable]
  createdAt: String
  networkVolume: NetworkVolume
  executionTimeoutMs: Int
  flashBootType: FlashBootType
  pods: [Pod]
  workersPFBTarget: Int
  flashEnvironmentId: String
  activeBuildid: String
  idePodId: String
  instanceIds: [String]
  allowedCudaVersions: String
  minCudaVersion: String
  networkVolumeIds: [EndpointNetworkVolumeId]
  computeType: String
  modelReferences: [String]
  compliance: [Compliance]
}

type ServerlessDiscount { discountFactor: Float type: String expirationDate: String }

type User {
  id: String
  clientBalance: Float
  currentSpendPerHr: Float
  spendLimit: Float
  endpoints: [Endpoint]
  endpoint(id: String!): Endpoint
  serverlessDiscount: ServerlessDiscount
  pods: [Pod]
}

type Query { myself: User }

input EnvironmentVariableInput { key: String! value: String }
input NetworkVolumeIdsInput { networkVolumeId: String! }
input EndpointTemplateInput {
  name: String
  imageName: String
  containerDiskInGb: Int
  dockerArgs: String
  env: [EnvironmentVariableInput]
  volumeInGb: Int
  isServerless: Boolean
}

input EndpointInput {
  id: String
  name: String
  templateId: String
  gpuIds: String
  gpuCount: Int
  instanceIds: [String]
  workersMin: Int
  workersMax: Int
  workersStandby: Int
  workersPFBTarget: Int
  locations: String
  networkVolumeId: String
  networkVolumeIds: [NetworkVolumeIdsInput]
  idleTimeout: Int
  scalerType: String
  scalerValue: Int
  executionTimeoutMs: Int
  minCudaVersion: String
  allowedCudaVersions: String
  flashBootType: FlashBootType
  type: String
  modelReferences: [String]
  compliance: [Compliance]
  hubReleaseId: String
  env: [EnvironmentVariableInput]
  template: EndpointTemplateInput
}

type Mutation {
  saveEndpoint(input: EndpointInput!): Endpoint
  deleteEndpoint(id: String!): String
}
"""

SCHEMA: GraphQLSchema = build_schema(SCHEMA_SDL)
VALIDATION_RULES = (*specified_rules, NoSchemaIntrospectionCustomRule)

# EndpointInput field → SimEndpoint attribute (the fields the simulator models; the rest are accepted
# and ignored, as they do not affect cost).
INPUT_FIELD_TO_SIM: dict[str, str] = {
    "id": "id",
    "name": "name",
    "templateId": "template_id",
    "gpuIds": "gpu_ids",
    "gpuCount": "gpu_count",
    "workersMin": "workers_min",
    "workersMax": "workers_max",
    "workersStandby": "workers_standby",
    "locations": "locations",
    "networkVolumeId": "network_volume_id",
    "idleTimeout": "idle_timeout",
    "scalerType": "scaler_type",
    "scalerValue": "scaler_value",
    "executionTimeoutMs": "execution_timeout_ms",
    "flashBootType": "flashboot",
    "type": "type",
    "env": "env",
}
_ENDPOINT_TYPES = {"QB": "QUEUE", "LB": "LOAD_BALANCER", "QUEUE": "QUEUE", "LOAD_BALANCER": "LOAD_BALANCER"}


def endpoint_input_to_sim_fields(endpoint_input: dict[str, Any]) -> dict[str, Any]:
    """Only the provided (non-null) fields, renamed to SimEndpoint's names; the engine resets the rest."""
    fields: dict[str, Any] = {}
    for key, provided in endpoint_input.items():
        target = INPUT_FIELD_TO_SIM.get(key)
        if target is None:
            continue
        if provided is None:
            if key == "executionTimeoutMs":
                fields[target] = None
            continue
        value: Any = provided
        if key == "type":
            value = _ENDPOINT_TYPES.get(str(provided).upper())
            if value is None:
                raise GraphQLError(f'Endpoint type must be "QB" or "LB", got "{provided}"')
        elif key == "env":
            value = {item["key"]: item.get("value") or "" for item in provided}
        fields[target] = value
    volumes = endpoint_input.get("networkVolumeIds")
    if "network_volume_id" not in fields and volumes:
        fields["network_volume_id"] = volumes[0]["networkVolumeId"]
    return fields


class GraphQLService:
    """Executes one GraphQL request against a Simulator."""

    def __init__(self, sim: Simulator, *, prices: PriceTable, now: Callable[[], float]) -> None:
        self.sim = sim
        self.prices = prices
        self.now = now

    # ----- resolvers (graphql-core calls callables found in the source dict with (info, **args)) -----
    def _endpoint_dict(self, endpoint_id: str) -> dict[str, Any]:
        ep = self.sim.endpoint(endpoint_id)
        return graphql_endpoint(ep, self.sim.workers(ep.id), now=self.now(), prices=self.prices)

    def _myself(self, _info: Any) -> dict[str, Any]:
        account = self.sim.account

        def endpoints(_info: Any) -> list[dict[str, Any]]:
            return [self._endpoint_dict(ep.id) for ep in self.sim.endpoints()]

        def endpoint(_info: Any, id: str) -> dict[str, Any] | None:
            try:
                return self._endpoint_dict(id)
            except SimError:
                return None

        return {
            "id": "user-sim",
            "clientBalance": account.client_balance_usd,
            "currentSpendPerHr": self.sim.current_spend_per_hr(),
            "spendLimit": account.spend_limit_usd,
            "endpoints": endpoints,
            "endpoint": endpoint,
            "serverlessDiscount": None,
            "pods": [],
        }

    def _save_endpoint(self, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        fields = endpoint_input_to_sim_fields(input)
        try:
            ep = self.sim.save_endpoint(fields)
        except SimError as exc:
            raise GraphQLError(str(exc) or type(exc).__name__) from exc
        return self._endpoint_dict(ep.id)

    def _delete_endpoint(self, _info: Any, id: str) -> None:
        try:
            self.sim.delete_endpoint(id)
        except SimError as exc:
            raise GraphQLError(str(exc) or type(exc).__name__) from exc

    # ----- the HTTP-facing entry point -----
    def run(self, payload: Any) -> tuple[int, dict[str, Any]]:
        """``payload`` is the decoded JSON body. Returns (HTTP status, response body)."""
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            return 400, request_error("Must provide query string.")
        variables = payload.get("variables")
        if variables is not None and not isinstance(variables, dict):
            return 400, request_error("Variables must be provided as an object.")
        operation_name = payload.get("operationName")
        try:
            document = parse(payload["query"])
        except GraphQLError as exc:
            return 400, {"errors": [exc.formatted], "data": None}
        errors = validate(SCHEMA, document, VALIDATION_RULES)
        if errors:
            return 400, {"errors": [e.formatted for e in errors], "data": None}
        root = {
            "myself": self._myself,
            "saveEndpoint": self._save_endpoint,
            "deleteEndpoint": self._delete_endpoint,
        }
        result = execute(
            SCHEMA,
            document,
            root_value=root,
            variable_values=variables,
            operation_name=operation_name if isinstance(operation_name, str) else None,
        )
        if hasattr(result, "__await__"):  # pragma: no cover - every resolver here is synchronous
            raise TypeError("asynchronous GraphQL execution is not supported")
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body = {"errors": [e.formatted for e in result.errors], "data": result.data}
            if result.data is None:  # variable coercion or operation selection failed: a request error
                return 400, body
        return 200, body


def request_error(message: str) -> dict[str, Any]:
    return {"errors": [{"message": message}], "data": None}
