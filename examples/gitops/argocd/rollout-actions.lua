-- Argo CD resource actions for wufb.dev ExpeditedDeployment: promote, abort and retry, as
-- `wufb-operator promote|abort|retry` (and `kubectl wufb ...`) make them: the same annotation, the same
-- value (promote: the next wave not sent, `WAVE@TIME`; abort and retry: `TIME`, RFC 3339 UTC), and the
-- same refusals. Argo CD runs one of the definitions below with `action` set to its name; discovery
-- lists the three with the ones the rollout's state refuses disabled.
local function stamp()
  return os.date("!%Y-%m-%dT%H:%M:%S") .. ".000Z"
end
local function name()
  return (obj.metadata and obj.metadata.name) or "the rollout"
end
local function recorded()
  if obj.status ~= nil and obj.status.rollout ~= nil then return obj.status.rollout end
  return {}
end
local function next_wave()
  local sent = {}
  for _, w in ipairs(recorded().waves or {}) do
    if w.promotedTime ~= nil then sent[w.name] = true end
  end
  for _, w in ipairs(obj.spec.rollout.waves or {}) do
    if not sent[w.name] then return w.name end
  end
  return nil
end
-- Why `request` cannot be made now, or nil.
local function refusal(request)
  if obj.spec == nil or obj.spec.rollout == nil then
    return name() .. " has no spec.rollout: there is no wave to promote, halt or abort"
  end
  local r = recorded()
  if request == "retry" and r.halt == nil then
    return name() .. " is not halted: retry lifts a halt, and there is none"
  end
  if request == "promote" then
    if obj.spec.paused == true then
      return name() .. " has spec.paused set: nothing is promoted while it is; set paused: false first"
    end
    if r.aborted ~= nil then
      return name() .. " is aborted: no wave is promoted until the spec changes (see status.rollout.aborted)"
    end
    if r.halt ~= nil then
      return name() .. " is halted: run retry first (status.rollout.halt says why it halted)"
    end
    if next_wave() == nil then return "every wave of " .. name() .. " is sent already" end
  end
  return nil
end
-- The annotation and value of `request`.
local function request_annotation(request)
  if request == "promote" then return "wufb.dev/promote", next_wave() .. "@" .. stamp() end
  return "wufb.dev/" .. request, stamp()
end
if action == "discover" then
  local actions = {}
  for _, request in ipairs({"promote", "abort", "retry"}) do
    actions[request] = {["disabled"] = refusal(request) ~= nil}
  end
  return actions
end
local why = refusal(action)
if why ~= nil then error(why, 0) end
local key, value = request_annotation(action)
if obj.metadata.annotations == nil then obj.metadata.annotations = {} end
obj.metadata.annotations[key] = value
return obj
