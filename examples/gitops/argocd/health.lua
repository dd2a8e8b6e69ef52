-- Argo CD health for the four wufb.dev kinds (ExpeditedDeployment, DeviceGroup, GraphConnection,
-- ClusterGraphConnection), from their kstatus conditions. Healthy: Ready=True for the current
-- generation. Degraded: Stalled=True (the operator needs a spec or tenant change), or a connection that
-- cannot sign in (its objects are served by nobody while it retries). Progressing: anything else (not
-- observed yet, reconciling, waiting on a group).
local hs = {}
local function current(c)
  return c.observedGeneration == nil or obj.metadata.generation == nil or c.observedGeneration >= obj.metadata.generation
end
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end
if obj.status.observedGeneration ~= nil and obj.metadata.generation ~= nil and obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. obj.metadata.generation
  return hs
end
local ready, stalled, reconciling
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then ready = c end
  if c.type == "Stalled" then stalled = c end
  if c.type == "Reconciling" then reconciling = c end
end
local function describe(c)
  local text = c.reason or ""
  if c.message ~= nil and c.message ~= "" then text = text .. ": " .. c.message end
  return text
end
if stalled ~= nil and stalled.status == "True" and current(stalled) then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end
if (obj.kind == "GraphConnection" or obj.kind == "ClusterGraphConnection") and ready ~= nil
    and ready.status == "False" and ready.reason == "ConnectionFailed" then
  hs.status = "Degraded"
  hs.message = describe(ready)
  return hs
end
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling)
  return hs
end
if ready ~= nil and ready.status == "True" and current(ready) then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end
hs.status = "Progressing"
if ready ~= nil then hs.message = describe(ready) else hs.message = "Waiting for the Ready condition" end
return hs
