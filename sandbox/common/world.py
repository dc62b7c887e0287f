"""The simulated company: employees, customers, contacts, deals and OA history.

Both simulators build their seed data from one ``World`` so that the two
systems agree the way a real company's do: CRM owners and OA users share
e-mail addresses, OA expenses point at real CRM company ids, 立项申请 carry real
deal ids. Every record is a pure function of ``(seed, index)``, so a million
deals can be generated in chunks, in any order, in seconds, and a test can
re-derive what any record looks like.

A configurable share of records is dirty the way real data is (duplicates
with name variants, missing fields, bad or full-width phone numbers, upper
case e-mails, wrong credit-code check digits). ``World.defects()`` lists
what was injected, so tests and the data-health suites can check they find it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

# ---------------------------------------------------------------- id spaces
# HubSpot ids are numeric strings; disjoint ranges keep them unique across types.
COMPANY_ID_BASE = 30_000_000_000
CONTACT_ID_BASE = 40_000_000_000
DEAL_ID_BASE = 50_000_000_000
OWNER_ID_BASE = 70_000_000

SH = timedelta(hours=8)  # Asia/Shanghai, no DST

# ---------------------------------------------------------------- approvals
# Approval definition codes of the OA simulator; include/settings.yaml uses
# the same defaults (oa.approval_codes).
APPROVAL_CODES = {
    "project_initiation": "B5C1E7A2-4D3F-4A8E-9C21-0F6D2A7B1001",
    "expense_claim": "B5C1E7A2-4D3F-4A8E-9C21-0F6D2A7B1002",
    "travel_request": "B5C1E7A2-4D3F-4A8E-9C21-0F6D2A7B1003",
    "visit_plan": "B5C1E7A2-4D3F-4A8E-9C21-0F6D2A7B1004",
    "contract_amount_notice": "B5C1E7A2-4D3F-4A8E-9C21-0F6D2A7B1005",
    "deal_void_notice": "B5C1E7A2-4D3F-4A8E-9C21-0F6D2A7B1006",
}

# ---------------------------------------------------------------- pools
_CITIES = [
    ("北京", "110105"), ("上海", "310115"), ("广州", "440106"), ("深圳", "440305"),
    ("杭州", "330106"), ("南京", "320106"), ("成都", "510107"), ("武汉", "420106"),
    ("苏州", "320505"), ("西安", "610113"), ("天津", "120116"), ("重庆", "500112"),
    ("长沙", "430104"), ("青岛", "370212"), ("宁波", "330212"), ("合肥", "340104"),
    ("厦门", "350206"), ("郑州", "410105"), ("济南", "370102"), ("无锡", "320214"),
]
_WORDS = [
    "星辰", "华信", "宏达", "汇通", "恒瑞", "博远", "东方", "明德", "天成", "中科",
    "瑞丰", "锦程", "金桥", "盛世", "联创", "致远", "润泽", "卓越", "鼎新", "海纳",
    "云帆", "启航", "腾飞", "华夏", "长城", "凯旋", "美达", "安信", "同方", "永泰",
    "新宇", "嘉禾", "远景", "晨光", "九州", "信达", "兴业", "泰和", "万通", "国信",
]
_TRADES = [
    ("科技", "信息技术"), ("软件", "信息技术"), ("电子", "制造业"), ("机械", "制造业"),
    ("医疗器械", "医疗健康"), ("生物", "医疗健康"), ("物流", "交通物流"), ("贸易", "批发零售"),
    ("建设工程", "建筑业"), ("新能源", "能源"), ("文化传媒", "文化传媒"), ("咨询", "商务服务"),
]
_SUFFIXES = ["有限公司", "有限责任公司", "股份有限公司"]
_SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾")
_GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "涛", "明",
          "超", "秀英", "霞", "平", "刚", "桂英", "建华", "文", "华", "红", "志强", "晓东", "海燕", "子涵", "欣怡"]
_PINYIN = {
    "王": "wang", "李": "li", "张": "zhang", "刘": "liu", "陈": "chen", "杨": "yang", "黄": "huang",
    "赵": "zhao", "吴": "wu", "周": "zhou", "徐": "xu", "孙": "sun", "马": "ma", "朱": "zhu",
    "胡": "hu", "郭": "guo", "何": "he", "高": "gao", "林": "lin", "罗": "luo", "郑": "zheng",
    "梁": "liang", "谢": "xie", "宋": "song", "唐": "tang", "许": "xu", "韩": "han", "冯": "feng",
    "邓": "deng", "曹": "cao", "彭": "peng", "曾": "zeng",
}
_JOBS = ["总经理", "采购经理", "技术总监", "财务总监", "项目经理", "行政主管", "IT经理", "运营总监"]
_MOBILE_PREFIXES = ["138", "139", "136", "137", "150", "151", "158", "186", "188", "177", "199", "135"]
_STREETS = ["中山路", "人民路", "解放路", "建设路", "和平路", "科技园路", "滨江大道", "世纪大道"]
_DEAL_THINGS = ["ERP实施", "数据中台建设", "设备采购", "运维服务", "系统集成", "软件许可", "咨询服务",
                "云迁移", "安全加固", "培训服务", "智能工厂改造", "供应链平台"]
# HubSpot internal stage values (default pipeline + a custom "delivered" stage)
# with a realistic distribution.
_STAGES = [
    ("appointmentscheduled", 18), ("qualifiedtobuy", 16), ("presentationscheduled", 14),
    ("decisionmakerboughtin", 12), ("contractsent", 10), ("closedwon", 14), ("delivered", 6),
    ("closedlost", 10),
]
_LIFECYCLE = [("lead", 30), ("opportunity", 35), ("customer", 35)]
_EXPENSE_TYPES = ["交通", "住宿", "餐饮", "招待", "其他"]
_PURPOSES = ["客户需求调研", "方案汇报", "合同谈判", "项目启动会", "售后回访", "技术交流", "验收评审"]

# USCC (GB 32100-2015) and organisation code (GB 11714) alphabets and weights.
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
_ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2]


def uscc_check_char(first17: str) -> str:
    """Check character (18th) of a unified social credit code."""
    total = sum(_USCC_CHARS.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_CHARS[(31 - total % 31) % 31]


def make_uscc(rng: random.Random, division: str) -> str:
    """A valid 统一社会信用代码: 9 (工商) 1 (企业) + division + org code (+ its check) + check."""
    body = "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(8))
    # GB 11714 values: digits as themselves, letters A=10 ... Z=35.
    org_sum = sum((int(c) if c.isdigit() else ord(c) - 55) * w for c, w in zip(body, _ORG_WEIGHTS, strict=True))
    c9 = 11 - org_sum % 11
    org_check = "X" if c9 == 10 else ("0" if c9 == 11 else str(c9))
    first17 = "91" + division + body + org_check
    return first17 + uscc_check_char(first17)


def _weighted(rng: random.Random, pairs: list[tuple[str, int]]) -> str:
    total = sum(w for _, w in pairs)
    x = rng.uniform(0, total)
    for value, w in pairs:
        x -= w
        if x <= 0:
            return value
    return pairs[-1][0]


def _iso_ms(ms: int) -> str:
    """HubSpot's datetime wire format: ISO 8601 UTC with milliseconds and Z."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _short_name(company: str) -> str:
    """Company name without its legal-form suffix (for deal names)."""
    for suffix in ("股份有限公司", "有限责任公司", "有限公司"):
        if company.endswith(suffix):
            return company[: -len(suffix)]
    return company


def _full_width(s: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in s)


# ---------------------------------------------------------------- records
@dataclass(frozen=True)
class Department:
    department_id: str
    name: str


@dataclass(frozen=True)
class Employee:
    """A staff member. Sales staff are CRM owners; ``oa_account`` False models
    an owner who has no OA account (the bridge must quarantine their deals)."""

    user_id: str  # Feishu user_id
    open_id: str  # Feishu open_id
    name: str
    email: str
    mobile: str
    department_id: str
    role: str  # employee | project_manager | sales_manager | finance | management
    owner_id: str | None = None  # HubSpot owner id when the person is a CRM owner
    oa_account: bool = True


@dataclass
class SeedObject:
    """A CRM object as the CRM simulator stores it: every property a string."""

    object_type: str  # companies | contacts | deals
    id: str
    properties: dict[str, str]
    created_ms: int
    modified_ms: int
    associations: dict[str, list[str]] = field(default_factory=dict)  # to_type -> ids


@dataclass
class SeedInstance:
    """An OA approval instance as the OA simulator stores it."""

    approval: str  # key of APPROVAL_CODES
    instance_code: str
    uuid: str
    user_id: str
    open_id: str
    department_id: str
    status: str
    serial_number: str
    start_ms: int
    end_ms: int  # 0 while PENDING
    form: list[dict[str, object]]  # Feishu widget values: id, type, name, value


DEPARTMENTS = [
    Department("od-sales-east", "华东销售部"),
    Department("od-sales-north", "华北销售部"),
    Department("od-sales-south", "华南销售部"),
    Department("od-finance", "财务部"),
    Department("od-pmo", "项目管理部"),
    Department("od-admin", "行政部"),
    Department("od-management", "总经办"),
]


class World:
    """Deterministic generator of the company's data.

    ``now_ms`` anchors every date: history spreads over ``history_days``
    before it. Counts are how many records ``iter_*`` yield; contacts are
    ``contacts_per_company`` per company.
    """

    def __init__(
        self,
        seed: int = 20261126,
        companies: int = 200,
        contacts_per_company: int = 2,
        deals: int = 400,
        oa_instances: int = 300,
        dirty_share: float = 0.05,
        now_ms: int | None = None,
        history_days: int = 730,
    ) -> None:
        self.seed = seed
        self.n_companies = companies
        self.contacts_per_company = contacts_per_company
        self.n_deals = deals
        self.n_oa_instances = oa_instances
        self.dirty_share = dirty_share
        self.now_ms = now_ms if now_ms is not None else int(datetime.now(tz=UTC).timestamp() * 1000)
        self.history_ms = history_days * 86_400_000
        self.departments = list(DEPARTMENTS)
        self.employees = self._employees()

    # ------------------------------------------------------------ people
    def _employees(self) -> list[Employee]:
        rng = random.Random(self.seed)
        people: list[Employee] = []
        plan = (
            [("employee", d) for d in ("od-sales-east", "od-sales-north", "od-sales-south") for _ in range(4)]
            + [("sales_manager", d) for d in ("od-sales-east", "od-sales-north", "od-sales-south")]
            + [("project_manager", "od-pmo")] * 3
            + [("finance", "od-finance")] * 2
            + [("employee", "od-admin")] * 2
            + [("management", "od-management")] * 2
        )
        used: set[str] = set()
        for i, (role, dept) in enumerate(plan):
            while True:
                surname, given = rng.choice(_SURNAMES), rng.choice(_GIVEN)
                if surname + given not in used:
                    used.add(surname + given)
                    break
            email = f"{_PINYIN[surname]}.{i + 1:02d}@example.com"
            is_sales = dept.startswith("od-sales")
            people.append(
                Employee(
                    user_id=f"u{i + 1:04d}{rng.randrange(16**4):04x}",
                    open_id=f"ou_{rng.randrange(16**32):032x}",
                    name=surname + given,
                    email=email,
                    mobile=rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}",
                    department_id=dept,
                    role=role,
                    owner_id=str(OWNER_ID_BASE + i + 1) if is_sales else None,
                )
            )
        # A CRM owner who left: in the CRM, not in the OA.
        people.append(
            Employee(
                user_id="u9999dead", open_id="ou_" + "0" * 32, name="离职销售", email="former.sales@example.com",
                mobile="13900000000", department_id="od-sales-east", role="employee",
                owner_id=str(OWNER_ID_BASE + 999), oa_account=False,
            )
        )
        # The bridge's notice applicant (include/settings.yaml oa.notice_applicant_email).
        people.append(
            Employee(
                user_id="u0000bot1", open_id="ou_" + "b" * 32, name="财务通知机器人",
                email="finance-bot@example.com", mobile="13800000000", department_id="od-finance", role="finance",
            )
        )
        return people

    @property
    def owners(self) -> list[Employee]:
        """CRM owners (sales staff), including the one without an OA account."""
        return [e for e in self.employees if e.owner_id]

    @property
    def oa_users(self) -> list[Employee]:
        return [e for e in self.employees if e.oa_account]

    def _active_owner(self, rng: random.Random) -> Employee:
        active = [e for e in self.owners if e.oa_account]
        return rng.choice(active)

    # ------------------------------------------------------------ helpers
    def _rng(self, kind: int, i: int) -> random.Random:
        return random.Random((self.seed * 1_000_003 + kind) * 10_000_019 + i)

    def _dirty(self, rng: random.Random) -> bool:
        return rng.random() < self.dirty_share

    def _created_ms(self, rng: random.Random) -> int:
        return self.now_ms - self.history_ms + int(rng.random() * (self.history_ms - 3_600_000))

    def _modified_ms(self, rng: random.Random, created: int, days: int) -> int:
        """Last edit: up to ``days`` after creation, never later than a second ago. Spread over the window
        that is left (one draw, as before) instead of clamping, so recent records do not all share one
        millisecond: a clamp put ~8% of a large world's deals on the same timestamp."""
        window = min(days * 86_400_000, max(0, self.now_ms - 1000 - created))
        return created + int(rng.random() * window)

    def company_id(self, i: int) -> str:
        return str(COMPANY_ID_BASE + i + 1)

    def deal_id(self, i: int) -> str:
        return str(DEAL_ID_BASE + i + 1)

    def contact_id(self, i: int) -> str:
        return str(CONTACT_ID_BASE + i + 1)

    def company_name(self, i: int) -> str:
        """The clean legal name of company i (unique for any world size)."""
        rng = self._rng(1, i)
        city, _ = _CITIES[i % len(_CITIES)]
        word = _WORDS[(i // len(_CITIES)) % len(_WORDS)]
        trade, _ = _TRADES[(i // (len(_CITIES) * len(_WORDS))) % len(_TRADES)]
        cycle = i // (len(_CITIES) * len(_WORDS) * len(_TRADES))
        extra = "" if cycle == 0 else _WORDS[cycle % len(_WORDS)] + (str(cycle // len(_WORDS)) if cycle >= len(_WORDS) else "")
        return f"{city}{word}{extra}{trade}{rng.choice(_SUFFIXES[:2])}"

    # ------------------------------------------------------------ CRM
    def company(self, i: int) -> SeedObject:
        rng = self._rng(1, i)
        city, division = _CITIES[i % len(_CITIES)]
        name = self.company_name(i)
        trade_industry = _TRADES[(i // (len(_CITIES) * len(_WORDS))) % len(_TRADES)][1]
        owner = self._active_owner(rng) if rng.random() > 0.01 else self.owners[-1]
        created = self._created_ms(rng)
        modified = self._modified_ms(rng, created, 90)
        props = {
            "name": name,
            "uscc": make_uscc(rng, division),
            "lifecyclestage": _weighted(rng, _LIFECYCLE),
            "industry": trade_industry,
            "city": city,
            "address": f"{city}市{rng.choice(_STREETS)}{rng.randint(1, 999)}号",
            "phone": f"0{rng.randint(10, 99)}-{rng.randint(10_000_000, 99_999_999)}",
            "hubspot_owner_id": owner.owner_id or "",
            "description": "",
        }
        if self._dirty(rng):
            self._make_dirty_company(rng, i, props)
        props["createdate"] = _iso_ms(created)
        props["hs_lastmodifieddate"] = _iso_ms(modified)
        return SeedObject("companies", self.company_id(i), props, created, modified)

    def _make_dirty_company(self, rng: random.Random, i: int, props: dict[str, str]) -> None:
        kind = rng.choice(["dup_variant", "missing_uscc", "bad_uscc", "full_width_name", "bad_phone"])
        props["_defect"] = kind
        if kind == "dup_variant" and i > 0:
            # A second CRM record for an earlier company, with a name variant and
            # the same credit code: what de-duplication must merge.
            j = rng.randrange(i)
            original = self.company(j).properties
            variant = original["name"]
            variant = (variant.replace("有限责任公司", "有限公司") if "有限责任公司" in variant
                       else variant.replace("有限公司", "有限责任公司"))
            city = original["city"]
            if rng.random() < 0.5 and variant.startswith(city):
                short = _short_name(variant)
                variant = f"{short[len(city):]}（{city}）{variant[len(short):]}"
            props.update(name=" " + variant + " ", uscc=original["uscc"], city=original["city"])
            props["_duplicate_of"] = self.company_id(j)
        elif kind == "missing_uscc":
            props["uscc"] = ""
        elif kind == "bad_uscc":
            u = props["uscc"]
            props["uscc"] = u[:-1] + ("0" if u[-1] != "0" else "1")
        elif kind == "full_width_name":
            props["name"] = _full_width(props["name"]).replace("（", "(").replace("）", ")") + "　"
        else:
            props["phone"] = "12345"

    def contact(self, i: int) -> SeedObject:
        rng = self._rng(2, i)
        company_index = i // max(1, self.contacts_per_company)
        company = self.company(company_index)
        surname, given = rng.choice(_SURNAMES), rng.choice(_GIVEN)
        mobile = rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"
        email = f"{_PINYIN[surname]}{rng.randrange(1000):03d}@{['qq.com', '163.com', 'example.cn', 'corp.example.com'][i % 4]}"
        created = max(company.created_ms, self._created_ms(rng))
        modified = self._modified_ms(rng, created, 60)
        props = {
            "lastname": surname,
            "firstname": given,
            "mobilephone": mobile,
            "email": email,
            "jobtitle": rng.choice(_JOBS),
            "associatedcompanyid": company.id,
            "hubspot_owner_id": company.properties["hubspot_owner_id"],
        }
        if self._dirty(rng):
            kind = rng.choice(["mobile_formatted", "mobile_full_width", "bad_mobile", "email_upper", "missing_mobile"])
            props["_defect"] = kind
            if kind == "mobile_formatted":
                props["mobilephone"] = f"+86 {mobile[:3]}-{mobile[3:7]}-{mobile[7:]}"
            elif kind == "mobile_full_width":
                props["mobilephone"] = _full_width(mobile)
            elif kind == "bad_mobile":
                props["mobilephone"] = mobile[:-2]
            elif kind == "email_upper":
                props["email"] = " " + email.upper()
            else:
                props["mobilephone"] = ""
        props["createdate"] = _iso_ms(created)
        props["hs_lastmodifieddate"] = _iso_ms(modified)
        return SeedObject(
            "contacts", self.contact_id(i), props, created, modified, associations={"companies": [company.id]}
        )

    def deal(self, i: int) -> SeedObject:
        rng = self._rng(3, i)
        company_index = rng.randrange(max(1, self.n_companies))
        company_id = self.company_id(company_index)
        company_owner = self._rng(1, company_index)  # same draw order as company(): owner follows the customer
        owner = self._active_owner(company_owner) if company_owner.random() > 0.01 else self.owners[-1]
        stage = _weighted(rng, _STAGES)
        created = self._created_ms(rng)
        modified = self._modified_ms(rng, created, 120)
        close_ms = created + int((20 + rng.random() * 160) * 86_400_000)
        amount = round(rng.lognormvariate(12.2, 0.9) / 100) * 100  # CNY, median ~200k
        props = {
            "dealname": f"{_short_name(self.company_name(company_index))}{rng.choice(_DEAL_THINGS)}项目",
            "dealstage": stage,
            "pipeline": "default",
            "amount": f"{amount:.2f}",
            "closedate": _iso_ms(close_ms - close_ms % 86_400_000),
            "hubspot_owner_id": owner.owner_id or "",
            "deal_currency_code": "CNY",
            "description": "",
        }
        if self._dirty(rng):
            kind = rng.choice(["missing_amount", "unmapped_stage", "negative_amount"])
            props["_defect"] = kind
            if kind == "missing_amount":
                props["amount"] = ""
            elif kind == "unmapped_stage":
                props["dealstage"] = "legacy_stage_7"
            else:
                props["amount"] = f"-{amount:.2f}"
        props["createdate"] = _iso_ms(created)
        props["hs_lastmodifieddate"] = _iso_ms(modified)
        return SeedObject("deals", self.deal_id(i), props, created, modified, associations={"companies": [company_id]})

    def iter_companies(self, start: int = 0, stop: int | None = None) -> Iterator[SeedObject]:
        for i in range(start, self.n_companies if stop is None else min(stop, self.n_companies)):
            yield self.company(i)

    def iter_contacts(self, start: int = 0, stop: int | None = None) -> Iterator[SeedObject]:
        total = self.n_companies * self.contacts_per_company
        for i in range(start, total if stop is None else min(stop, total)):
            yield self.contact(i)

    def iter_deals(self, start: int = 0, stop: int | None = None) -> Iterator[SeedObject]:
        for i in range(start, self.n_deals if stop is None else min(stop, self.n_deals)):
            yield self.deal(i)

    # ------------------------------------------------------------ OA history
    def oa_instance(self, i: int) -> SeedInstance:
        """A historical OA instance: mostly expenses, trips and visits linked to
        customers; some 立项申请 linked to deals; a few with no customer link."""
        rng = self._rng(4, i)
        approval = _weighted(rng, [("expense_claim", 45), ("travel_request", 20), ("visit_plan", 20),
                                   ("project_initiation", 15)])
        users = [e for e in self.oa_users if e.role in ("employee", "sales_manager") and e.department_id.startswith("od-sales")]
        user = rng.choice(users)
        # Instances spread evenly over the history, oldest first; serial numbers
        # (date + daily counter, the 项目编号 of a 立项申请) are unique per tenant,
        # as Feishu documents, for any world size.
        days = max(1, self.history_ms // 86_400_000)
        n = max(1, self.n_oa_instances)
        if n <= days:
            day_no = i * days // n
            counter = i - (-(-day_no * n // days)) + 1  # position among the instances of that day
        else:
            day_no, counter = i % days, i // days + 1
        start = self._history_midnight_ms() + day_no * 86_400_000 + int(rng.random() * 86_400_000)
        status = _weighted(rng, [("APPROVED", 70), ("PENDING", 12), ("REJECTED", 10), ("CANCELED", 6), ("DELETED", 2)])
        # Decided instances were decided in the past, never after now.
        end = 0 if status == "PENDING" else min(start + int((0.1 + rng.random() * 5) * 86_400_000),
                                                max(start, self.now_ms - 1000))
        company_index = rng.randrange(max(1, self.n_companies))
        customer_id = self.company_id(company_index)
        day = datetime.fromtimestamp(start / 1000, tz=UTC) + SH
        date_str = day.strftime("%Y-%m-%dT00:00:00+08:00")
        missing_link = rng.random() < max(self.dirty_share / 2, 0.0)
        if missing_link:
            customer_id = "" if rng.random() < 0.5 else str(COMPANY_ID_BASE + 10**9 + i)
        form: list[dict[str, object]]
        if approval == "expense_claim":
            form = [
                {"id": "reason", "type": "textarea", "name": "报销事由", "value": f"{rng.choice(_PURPOSES)}发生费用"},
                {"id": "expense_type", "type": "radioV2", "name": "费用类型", "value": rng.choice(_EXPENSE_TYPES)},
                {"id": "amount", "type": "amount", "name": "报销金额", "value": round(50 + rng.random() * 5000, 2)},
                {"id": "expense_date", "type": "date", "name": "费用日期", "value": date_str},
                {"id": "customer_id", "type": "input", "name": "关联客户", "value": customer_id},
                {"id": "project_no", "type": "input", "name": "关联项目编号", "value": ""},
            ]
        elif approval == "travel_request":
            days = rng.randint(1, 5)
            end_day = (day + timedelta(days=days)).strftime("%Y-%m-%dT00:00:00+08:00")
            form = [
                {"id": "reason", "type": "textarea", "name": "出差事由", "value": rng.choice(_PURPOSES)},
                {"id": "destination", "type": "input", "name": "目的地", "value": rng.choice(_CITIES)[0]},
                {"id": "start_date", "type": "date", "name": "出发日期", "value": date_str},
                {"id": "end_date", "type": "date", "name": "返回日期", "value": end_day},
                {"id": "estimated_cost", "type": "amount", "name": "预计费用", "value": round(500 + rng.random() * 8000, 2)},
                {"id": "customer_id", "type": "input", "name": "关联客户", "value": customer_id},
                {"id": "project_no", "type": "input", "name": "关联项目编号", "value": ""},
            ]
        elif approval == "visit_plan":
            form = [
                {"id": "customer_id", "type": "input", "name": "拜访客户", "value": customer_id},
                {"id": "visit_date", "type": "date", "name": "拜访日期", "value": date_str},
                {"id": "purpose", "type": "textarea", "name": "拜访目的", "value": rng.choice(_PURPOSES)},
                {"id": "participants", "type": "input", "name": "参与人员", "value": user.name},
                {"id": "project_no", "type": "input", "name": "关联项目编号", "value": ""},
            ]
        else:
            deal_index = rng.randrange(max(1, self.n_deals))
            deal = self.deal(deal_index)
            company_id = deal.associations["companies"][0]
            cidx = int(company_id) - COMPANY_ID_BASE - 1
            form = [
                {"id": "project_name", "type": "input", "name": "项目名称", "value": deal.properties["dealname"]},
                {"id": "deal_id", "type": "input", "name": "CRM商机编号", "value": deal.id},
                {"id": "customer_id", "type": "input", "name": "客户编号", "value": company_id},
                {"id": "customer_name", "type": "input", "name": "客户名称", "value": self.company_name(cidx)},
                {"id": "contract_amount", "type": "amount", "name": "合同金额",
                 "value": float(deal.properties["amount"] or 0)},
            ]
        serial = day.strftime("%Y%m%d") + f"{counter:04d}"
        code = f"{rng.randrange(16**8):08X}-{rng.randrange(16**4):04X}-{rng.randrange(16**4):04X}-{rng.randrange(16**4):04X}-{i:012X}"
        return SeedInstance(
            approval=approval, instance_code=code, uuid=f"hist-{self.seed}-{i}", user_id=user.user_id,
            open_id=user.open_id, department_id=user.department_id, status=status, serial_number=serial,
            start_ms=start, end_ms=end, form=form,
        )

    def _history_midnight_ms(self) -> int:
        """Epoch ms of the Asia/Shanghai midnight that starts the OA history."""
        first = datetime.fromtimestamp((self.now_ms - self.history_ms) / 1000, tz=UTC) + SH
        midnight = first.replace(hour=0, minute=0, second=0, microsecond=0) - SH
        return int(midnight.timestamp() * 1000)

    def iter_oa_instances(self, start: int = 0, stop: int | None = None) -> Iterator[SeedInstance]:
        for i in range(start, self.n_oa_instances if stop is None else min(stop, self.n_oa_instances)):
            yield self.oa_instance(i)

    # ------------------------------------------------------------ truth
    def defects(self) -> dict[str, list[tuple[str, str]]]:
        """{defect kind: [(object type, id), ...]} of what was injected (small worlds only)."""
        found: dict[str, list[tuple[str, str]]] = {}
        for obj in [*self.iter_companies(), *self.iter_contacts(), *self.iter_deals()]:
            kind = obj.properties.get("_defect")
            if kind:
                found.setdefault(kind, []).append((obj.object_type, obj.id))
        for inst in self.iter_oa_instances():
            link = next((w["value"] for w in inst.form if w["id"] == "customer_id"), None)
            if inst.approval != "project_initiation" and (
                link == "" or (isinstance(link, str) and int(link) > COMPANY_ID_BASE + self.n_companies)
            ):
                found.setdefault("missing_customer_link", []).append(("instances", inst.instance_code))
        return found


def wire_properties(obj: SeedObject) -> dict[str, str]:
    """The properties a simulator stores: the ``_defect`` markers stripped."""
    return {k: v for k, v in obj.properties.items() if not k.startswith("_")}
