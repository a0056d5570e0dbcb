"""Real SIP calls through the proxy with sipp, and when each end saw its BYE.

The demo (deploy/demo-sip.sh), the integration tests and the SIP benchmark place calls with
sipp (Debian's `sip-tester`): a UAC per batch of calls (an injection file gives each call its
dialled number, user, tenant domain, caller number and hold time) → the proxy → one UAS
standing for the PSTN gateway. Both run with `-trace_msg`, whose log stamps every message
with the wall time to the microsecond; `bye_times` reads, per Call-ID, when a BYE arrived.

The UAC hangs up itself after its hold time unless a BYE comes first, so one scenario serves
calls that end normally and calls that the engine (or cnxcc) cuts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from calendar import timegm
from dataclasses import dataclass
from pathlib import Path

UAC_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- A call: INVITE through the proxy, ACK, then hold until a BYE comes (the call is cut) or
     the hold time ends (the caller hangs up). Fields: 0 dialled number, 1 user, 2 tenant
     domain, 3 caller number (P-Asserted-Identity), 4 budget in s (X-Max-Time, for cnxcc). -->
<scenario name="rating-engine uac">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[field0]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field1]@[field2]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field0]@[remote_ip]:[remote_port]>
      P-Asserted-Identity: <sip:[field3]@[field2]>
      X-Max-Time: [field4]
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:[field1]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:[field1]@[field2]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field0]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv request="BYE" timeout="HOLD_MS" ontimeout="hangup"/>
  <send next="done">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
  <label id="hangup"/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:[field1]@[field2]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field0]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" crlf="true"/>
  <label id="done"/>
</scenario>
"""

UAS_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- The PSTN gateway: answer every call at once, keep the proxy's Record-Route, take the BYE
     from whichever side sends it. -->
<scenario name="rating-engine uas">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
</scenario>
"""

_STAMP = re.compile(rb"^-{20,} (\d{4})-(\d\d)-(\d\d)[ \t](\d\d):(\d\d):(\d\d)\.(\d{6})$")


@dataclass(frozen=True)
class Message:
    """One SIP message of a sipp trace."""

    at_us: int  # wall time sipp logged it, epoch microseconds
    received: bool
    first_line: str
    call_id: str


def read_trace(path: Path) -> list[Message]:
    """Every message of a `-trace_msg` log (sipp runs under TZ=UTC, so stamps are UTC)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    out: list[Message] = []
    blocks = re.split(rb"\n(?=-{20,} \d{4}-)", data)
    for block in blocks:
        lines = block.split(b"\n")
        m = _STAMP.match(lines[0].rstrip(b"\r"))
        if not m or len(lines) < 4:
            continue
        y, mo, d, h, mi, s, us = (int(x) for x in m.groups())
        at_us = timegm((y, mo, d, h, mi, s, 0, 0, 0)) * 1_000_000 + us
        received = b"received" in lines[1]
        first = lines[3].rstrip(b"\r").decode("latin-1")
        call_id = ""
        for line in lines[4:]:
            low = line.lower()
            if low.startswith(b"call-id:") or low.startswith(b"i:"):
                call_id = line.split(b":", 1)[1].strip().decode("latin-1")
                break
        out.append(Message(at_us, received, first, call_id))
    return out


def bye_times(path: Path) -> dict[str, int]:
    """Call-ID -> when the first BYE of that call arrived at this end (epoch µs)."""
    out: dict[str, int] = {}
    for m in read_trace(path):
        if m.received and m.first_line.startswith("BYE ") and m.call_id not in out:
            out[m.call_id] = m.at_us
    return out


def answer_times(path: Path) -> dict[str, int]:
    """Call-ID -> when the UAC got the 200 OK to its INVITE (epoch µs)."""
    out: dict[str, int] = {}
    for m in read_trace(path):
        if m.received and m.first_line.startswith("SIP/2.0 200") and m.call_id not in out:
            out[m.call_id] = m.at_us
    return out


def hangup_times(path: Path) -> dict[str, int]:
    """Call-ID -> when the UAC sent its own BYE (epoch µs)."""
    out: dict[str, int] = {}
    for m in read_trace(path):
        if not m.received and m.first_line.startswith("BYE ") and m.call_id not in out:
            out[m.call_id] = m.at_us
    return out


def sipp_env() -> dict[str, str]:
    return {**os.environ, "TZ": "UTC"}


def require_sipp() -> str:
    path = shutil.which("sipp")
    if path is None:
        raise FileNotFoundError(
            "sipp not found (Debian's sip-tester: deploy/kamailio/kamailio.sh install)"
        )
    return path


class Uas:
    """The gateway side: one sipp UAS answering every call on 127.0.0.1:`port`."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir, self.port = workdir, port
        self.trace = workdir / f"uas-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        scenario = self.workdir / "uas.xml"
        scenario.write_text(UAS_XML)
        self.trace.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [
                require_sipp(),
                "-sf",
                str(scenario),
                "-i",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-trace_msg",
                "-message_file",
                str(self.trace),
                "-nostdin",
                "-max_socket",
                "4096",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / f"uas-{self.port}.err", "ab"),
            env=sipp_env(),
        )
        time.sleep(0.3)
        if self.proc.poll() is not None:
            raise RuntimeError(f"sipp UAS exited at start (see {self.workdir}/uas-{self.port}.err)")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def byes(self) -> dict[str, int]:
        return bye_times(self.trace)


@dataclass(frozen=True)
class Call:
    """One call a UAC places: what it dials, as whom, and how long the caller would talk."""

    to: str  # dialled number (Request-URI user), e.g. "2348031234567" or "+442071234567"
    user: str  # From user: the user_id
    tenant: str  # From host: the tenant_id
    caller: str  # P-Asserted-Identity user: `from`
    budget_s: int = 0  # X-Max-Time, read by cnxcc only


class Uac:
    """A sipp UAC placing `calls` through the proxy, `rate` per second, at most `limit` at once.

    Its Call-IDs are `<n>-<pid>@127.0.0.1` with n from 1 in the order of `calls`
    (`call_ids()` once it has started).
    """

    def __init__(
        self,
        workdir: Path,
        name: str,
        proxy: str,
        calls: list[Call],
        hold_s: float,
        rate: float = 10.0,
        limit: int = 1000,
    ) -> None:
        self.workdir, self.name, self.proxy, self.calls = workdir, name, proxy, calls
        self.hold_s, self.rate, self.limit = hold_s, rate, limit
        self.trace = workdir / f"uac-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        scenario = self.workdir / f"uac-{self.name}.xml"
        scenario.write_text(UAC_XML.replace("HOLD_MS", str(int(self.hold_s * 1000))))
        inf = self.workdir / f"uac-{self.name}.csv"
        inf.write_text(
            "SEQUENTIAL\n"
            + "".join(f"{c.to};{c.user};{c.tenant};{c.caller};{c.budget_s};\n" for c in self.calls)
        )
        self.trace.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [
                require_sipp(),
                self.proxy,
                "-sf",
                str(scenario),
                "-inf",
                str(inf),
                "-i",
                "127.0.0.1",
                "-m",
                str(len(self.calls)),
                "-r",
                str(self.rate),
                "-l",
                str(self.limit),
                "-trace_msg",
                "-message_file",
                str(self.trace),
                "-nostdin",
                "-max_socket",
                "4096",
                # a 180 relayed by another proxy process can arrive after the 200: ignore it
                "-default_behaviors",
                "all,-abortunexp",
                "-timeout",
                str(int(self.hold_s + 60)) + "s",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / f"uac-{self.name}.err", "ab"),
            env=sipp_env(),
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def call_ids(self) -> list[str]:
        return [f"{n}-{self.pid}@127.0.0.1" for n in range(1, len(self.calls) + 1)]

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def byes(self) -> dict[str, int]:
        return bye_times(self.trace)

    def answers(self) -> dict[str, int]:
        return answer_times(self.trace)

    def hangups(self) -> dict[str, int]:
        return hangup_times(self.trace)
