"""Who is asked to offer to a newcomer (DESIGN section 5, api-decisions "On join"):
mesh = every existing peer, star = only the broadcaster, overlay = up to 4 chosen at random;
every other existing peer gets peer-joined."""

import unittest

from harness import ParleyTestCase, Peer


class TopologyCase(ParleyTestCase):
    def setUp(self):
        # many joins from 127.0.0.1 in one test: lift the per-IP/per-user join limits
        self.srv = self.server(PARLEY_RL_JOIN_IP="0", PARLEY_RL_JOIN_USER="0")

    def drain(self, peers):
        for p in peers:
            self.assertStatus(p.events(), 200)

    def newcomer_effects(self, existing, newcomer):
        """{peerId: [event types]} of each existing peer after the newcomer joined, checking
        that every event names the newcomer."""
        out = {}
        for p in existing:
            ev = p.event_list()
            for e in ev:
                self.assertIn(e["type"], ("offer-request", "peer-joined"), e)
                self.assertEqual(e["peer"]["peerId"], newcomer.peer_id, e)
                self.assertEqual(e["peer"]["userId"], newcomer.user_id, e)
                self.assertEqual(e["to"], p.peer_id, e)
                self.assertIsNone(e["from"], e)
                self.assertEqual(e["roomId"], newcomer.room_id, e)
            out[p.peer_id] = [e["type"] for e in ev]
        self.assertEqual(newcomer.event_list(), [], "the newcomer gets nothing about itself")
        return out

    def build(self, topology, existing):
        B = Peer.create(self.srv, name="B", topology=topology)
        self.assertEqual(B.data["room"]["topology"], topology)
        peers = [B]
        for i in range(existing - 1):
            peers.append(Peer.join(self.srv, B.room_id, name="v%d" % i))
        self.drain(peers)
        return peers

    def join(self, peers, name="new"):
        n = Peer.join(self.srv, peers[0].room_id, name=name)
        self.assertEqual([p["peerId"] for p in n.data["peers"]], [p.peer_id for p in peers],
                         "peers: the members before the newcomer, oldest first")
        return n


class TestMesh(TopologyCase):
    def test_mesh_three_existing(self):
        peers = self.build("mesh", 3)
        n = self.join(peers)
        eff = self.newcomer_effects(peers, n)
        self.assertEqual(eff, {p.peer_id: ["offer-request"] for p in peers})

    def test_mesh_is_default_with_16_peers(self):
        B = Peer.create(self.srv)
        self.assertEqual(B.data["room"]["topology"], "mesh")
        self.assertEqual(B.data["room"]["maxPeers"], 16)


class TestStar(TopologyCase):
    def test_star(self):
        B = Peer.create(self.srv, name="B", topology="star")
        self.assertEqual(B.data["room"]["maxPeers"], 10000)
        V1 = Peer.join(self.srv, B.room_id, name="v1")
        self.assertEqual(self.newcomer_effects([B], V1), {B.peer_id: ["offer-request"]})
        V2 = Peer.join(self.srv, B.room_id, name="v2")
        self.assertEqual(self.newcomer_effects([B, V1], V2),
                         {B.peer_id: ["offer-request"], V1.peer_id: ["peer-joined"]})
        V3 = Peer.join(self.srv, B.room_id, name="v3")
        self.assertEqual(self.newcomer_effects([B, V1, V2], V3),
                         {B.peer_id: ["offer-request"], V1.peer_id: ["peer-joined"],
                          V2.peer_id: ["peer-joined"]})

    def test_star_without_broadcaster(self):
        B = Peer.create(self.srv, name="B", topology="star")
        vs = [Peer.join(self.srv, B.room_id, name="v%d" % i) for i in range(2)]
        self.assertStatus(B.leave(), 204)
        self.drain(vs)
        n = Peer.join(self.srv, B.room_id, name="late")
        self.assertEqual(self.newcomer_effects(vs, n), {p.peer_id: ["peer-joined"] for p in vs})

    def test_star_broadcaster_second_membership(self):
        # "only the broadcaster's live membership(s)": a second tab of the broadcaster is asked too
        B = Peer.create(self.srv, name="B", topology="star")
        B2 = Peer.join(self.srv, B.room_id, sub=B.user_id, name="B")
        V = Peer.join(self.srv, B.room_id, name="v")
        self.drain([B, B2, V])
        n = Peer.join(self.srv, B.room_id, name="new")
        self.assertEqual(self.newcomer_effects([B, B2, V], n),
                         {B.peer_id: ["offer-request"], B2.peer_id: ["offer-request"],
                          V.peer_id: ["peer-joined"]})


class TestOverlay(TopologyCase):
    def test_overlay_eight_existing(self):
        peers = self.build("overlay", 8)
        self.assertEqual(peers[0].data["room"]["maxPeers"], 10000)
        chosen_sets = []
        for round_ in range(4):
            n = self.join(peers, name="n%d" % round_)
            eff = self.newcomer_effects(peers, n)
            chosen = {pid for pid, types in eff.items() if types == ["offer-request"]}
            joined = {pid for pid, types in eff.items() if types == ["peer-joined"]}
            self.assertEqual(len(chosen), 4, eff)
            self.assertEqual(chosen | joined, set(eff), "each existing peer gets exactly one event")
            self.assertFalse(chosen & joined)
            chosen_sets.append(chosen)
            peers.append(n)
        # chosen at random: four newcomers are not all wired to the same four peers
        # (uniform choice makes that a < 1e-5 event)
        union = set().union(*chosen_sets)
        self.assertGreater(len(union), 4, "overlay always picks the same peers: %r" % chosen_sets)

    def test_overlay_small_room(self):
        peers = self.build("overlay", 2)
        n = self.join(peers)
        self.assertEqual(self.newcomer_effects(peers, n), {p.peer_id: ["offer-request"] for p in peers})
        peers.append(n)
        n2 = self.join(peers, "n2")
        self.assertEqual(self.newcomer_effects(peers, n2), {p.peer_id: ["offer-request"] for p in peers})
        peers.append(n2)
        n3 = self.join(peers, "n3")   # 4 existing: all 4 chosen
        self.assertEqual(self.newcomer_effects(peers, n3), {p.peer_id: ["offer-request"] for p in peers})


if __name__ == "__main__":
    unittest.main()
