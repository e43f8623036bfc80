"""web3.py's full pending-transaction subscription through an rpcmesh gateway.

Usage: pending_full.py GATEWAY_WS GATEWAY_HTTP ANVIL_HTTP

Subscribes with `eth_subscribe("newPendingTransactions", True)` over the gateway's WebSocket,
sends transfers (signed by anvil's unlocked dev account, sent raw through the gateway) until one
is notified, and checks the notification is the full transaction as web3.py decodes it. Prints
one JSON summary line; exits 0 on success.
"""

import asyncio
import json
import sys

from web3 import AsyncWeb3, Web3
from web3.providers.persistent import WebSocketProvider

SENDER = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
TO = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"


async def main(ws_url: str, gateway_http: str, anvil_http: str) -> int:
    anvil = Web3(Web3.HTTPProvider(anvil_http))
    gateway = Web3(Web3.HTTPProvider(gateway_http))
    sent: list[str] = []

    async def send_until_seen(stop: asyncio.Event) -> None:
        while not stop.is_set():
            signed = anvil.provider.make_request(
                "eth_signTransaction", [{"from": SENDER, "to": TO, "value": "0x1", "gas": "0x5208"}]
            )
            raw = signed["result"]
            answer = gateway.provider.make_request("eth_sendRawTransaction", [raw])
            sent.append(answer["result"].lower())
            try:
                await asyncio.wait_for(stop.wait(), 1.5)
            except asyncio.TimeoutError:
                pass

    async with AsyncWeb3(WebSocketProvider(ws_url)) as w3:
        sub_id = await w3.eth.subscribe("newPendingTransactions", True)
        stop = asyncio.Event()
        sender = asyncio.create_task(send_until_seen(stop))
        try:
            async with asyncio.timeout(45):
                async for msg in w3.socket.process_subscriptions():
                    tx = msg["result"]
                    assert msg["subscription"] == sub_id, msg
                    assert not isinstance(tx, (str, bytes)), f"a hash, not a transaction: {tx!r}"
                    h = tx["hash"].to_0x_hex() if hasattr(tx["hash"], "to_0x_hex") else str(tx["hash"])
                    if h.lower() in sent:
                        assert tx["from"].lower() == SENDER, tx
                        assert tx["to"].lower() == TO, tx
                        assert tx["value"] == 1, tx
                        print(json.dumps({"ok": True, "hash": h, "sent": len(sent)}))
                        return 0
        finally:
            stop.set()
            await sender
    print(json.dumps({"ok": False, "sent": len(sent)}))
    return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3])))
