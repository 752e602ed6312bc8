import { type KindDef, type ResourceView, resourceView } from "./kinds.ts";
import { asArray, asObject, asString, conditionsOf, type Json, type ObjectMeta, readinessFromConditions, specOf } from "./objects.ts";

/*
 * The Tailscale gateway operator's kinds (group gateway.tailscale.com). None has a phase or state field: every
 * kind is ready when its Ready condition (else Available) is True.
 *
 * Services (service_coordinator_services_total) are the VIP services the kinds declare: spec.vipService.name of
 * TailscaleService and TailscaleServices (default "svc:<object name>", as the operator names them), and the
 * entries of a TailscaleGateway's status.services, the VIP services that gateway manages. The same service
 * named twice in a namespace counts once.
 */

function view(kind: string, obj: Json, meta: ObjectMeta, services?: string[]): ResourceView {
  const readiness = readinessFromConditions(conditionsOf(obj));
  return resourceView({
    kind,
    family: "tailscale",
    namespace: meta.namespace,
    name: meta.name,
    uid: meta.key,
    ready: readiness.ready,
    status: readiness.status,
    services,
  });
}

function declaredVipService(obj: Json, meta: ObjectMeta): string[] {
  return [asString(asObject(specOf(obj).vipService)?.name) ?? `svc:${meta.name}`];
}

function gatewayServices(obj: Json): string[] {
  const names: string[] = [];
  for (const raw of asArray(asObject(obj.status)?.services)) {
    const name = asString(asObject(raw)?.name);
    if (name !== undefined) names.push(name);
  }
  return names;
}

export const TAILSCALE_KINDS: readonly KindDef[] = [
  {
    kind: "TailscaleGateway",
    plural: "tailscalegateways",
    namespaced: true,
    family: "tailscale",
    view: (obj, meta) => view("TailscaleGateway", obj, meta, gatewayServices(obj)),
  },
  {
    kind: "TailscaleEndpoints",
    plural: "tailscaleendpoints",
    namespaced: true,
    family: "tailscale",
    view: (obj, meta) => view("TailscaleEndpoints", obj, meta),
  },
  {
    kind: "TailscaleTailnet",
    plural: "tailscaletailnets",
    // A tailnet connection is cluster-wide; its series carry namespace="".
    namespaced: false,
    family: "tailscale",
    view: (obj, meta) => view("TailscaleTailnet", obj, meta),
  },
  {
    kind: "TailscaleRoutePolicy",
    plural: "tailscaleroutepolicies",
    namespaced: true,
    family: "tailscale",
    view: (obj, meta) => view("TailscaleRoutePolicy", obj, meta),
  },
  {
    kind: "TailscaleService",
    // The CRD's plural is the singular word.
    plural: "tailscaleservice",
    namespaced: true,
    family: "tailscale",
    view: (obj, meta) => view("TailscaleService", obj, meta, declaredVipService(obj, meta)),
  },
  {
    kind: "TailscaleServices",
    plural: "tailscaleservices",
    namespaced: true,
    family: "tailscale",
    view: (obj, meta) => view("TailscaleServices", obj, meta, declaredVipService(obj, meta)),
  },
];
