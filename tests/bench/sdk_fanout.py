"""The fanout job as an admin writes it with Microsoft's Graph beta SDK for Python: for each of D
deployments, create the deployment of one catalog entry and add its M devices to the audience with
updateAudience in batches of 1,000, D jobs 16 at a time (asyncio), no verification reads.

    python sdk_fanout.py GRAPH_BASE_URL TOKEN_URL TENANT CLIENT SECRET ENTRY DEPLOYMENTS DEVICES [CONCURRENCY]

Prints one JSON line: deployments, devices, seconds, devices_per_second, calls.
"""

import asyncio
import json
import sys
import time
import urllib.parse
import urllib.request

from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from msgraph_beta import GraphRequestAdapter, GraphServiceClient
from msgraph_beta.generated.admin.windows.updates.deployments.item.audience.microsoft_graph_windows_updates_update_audience.update_audience_post_request_body import (
    UpdateAudiencePostRequestBody,
)
from msgraph_beta.generated.models.windows_updates.azure_a_d_device import AzureADDevice
from msgraph_beta.generated.models.windows_updates.catalog_content import CatalogContent
from msgraph_beta.generated.models.windows_updates.deployment import Deployment
from msgraph_beta.generated.models.windows_updates.deployment_settings import DeploymentSettings
from msgraph_beta.generated.models.windows_updates.expedite_settings import ExpediteSettings
from msgraph_beta.generated.models.windows_updates.quality_update_catalog_entry import (
    QualityUpdateCatalogEntry,
)

BATCH = 1000


class ClientSecretToken(AccessTokenProvider):
    """The client-credentials token, fetched once (it outlives the job)."""

    def __init__(self, token_url, client, secret):
        self.token_url, self.client, self.secret = token_url, client, secret
        self.token = None

    async def get_authorization_token(self, uri, additional_authentication_context=None):
        if self.token is None:
            form = urllib.parse.urlencode(
                {
                    "grant_type": "client_credentials",
                    "client_id": self.client,
                    "client_secret": self.secret,
                    "scope": "https://graph.microsoft.com/.default",
                }
            ).encode()
            with urllib.request.urlopen(self.token_url, data=form) as answer:
                self.token = json.load(answer)["access_token"]
        return self.token

    def get_allowed_hosts_validator(self):
        return AllowedHostsValidator([])


def device(d, m):
    return f"00000000-0000-4000-{d:04x}-{m:012x}"


async def job(client, entry, d, devices, calls):
    created = await client.admin.windows.updates.deployments.post(
        Deployment(
            content=CatalogContent(catalog_entry=QualityUpdateCatalogEntry(id=entry)),
            settings=DeploymentSettings(expedite=ExpediteSettings(is_expedited=True)),
        )
    )
    calls[0] += 1
    audience = client.admin.windows.updates.deployments.by_deployment_id(created.id).audience
    for start in range(0, devices, BATCH):
        await audience.microsoft_graph_windows_updates_update_audience.post(
            UpdateAudiencePostRequestBody(
                add_members=[
                    AzureADDevice(id=device(d, m)) for m in range(start, min(start + BATCH, devices))
                ]
            )
        )
        calls[0] += 1


async def main():
    base, token_url, tenant, client_id, secret, entry, deployments, devices = sys.argv[1:9]
    concurrency = int(sys.argv[9]) if len(sys.argv) > 9 else 16
    deployments, devices = int(deployments), int(devices)
    auth = BaseBearerTokenAuthenticationProvider(ClientSecretToken(token_url, client_id, secret))
    adapter = GraphRequestAdapter(auth)
    adapter.base_url = base
    client = GraphServiceClient(request_adapter=adapter)
    gate = asyncio.Semaphore(concurrency)
    calls = [0]

    async def bounded(d):
        async with gate:
            await job(client, entry, d, devices, calls)

    started = time.monotonic()
    await asyncio.gather(*(bounded(d) for d in range(deployments)))
    seconds = time.monotonic() - started
    print(
        json.dumps(
            {
                "deployments": deployments,
                "devices": deployments * devices,
                "seconds": seconds,
                "devices_per_second": deployments * devices / seconds,
                "calls": calls[0],
            }
        )
    )


asyncio.run(main())
