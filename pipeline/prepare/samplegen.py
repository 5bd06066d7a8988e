"""Generate a small, fully synthetic sample crawl (WARC) for the demo and the tests.

Third-party pages cannot ship with the project, so every page here is built from text written for
this module: sentence templates whose slots are filled by a seeded RNG, wrapped in the structure real
pages have (navigation, cookie banners, share lines, related-links boxes, footers). The file holds the
record kinds and the traps a stage-1 ``prepare`` run must handle:

* English and Chinese articles (>= 150 words / >= 300 CJK characters, several paragraphs) on several
  site "skins", plus long articles in German, French, Spanish, Russian and Japanese;
* exact duplicates (same article, other URL and other boilerplate; one pair also in another charset)
  and near-duplicates (a few words changed);
* legacy charsets: GBK and GB2312 (declared in the HTTP header, in ``<meta>``, in both, or nowhere),
  GB2312 declared for bytes that need GBK, Shift_JIS, ISO-8859-1 and windows-1252 (including the
  common "ISO-8859-1 label, windows-1252 bytes" case), windows-1251, and a UTF-8 BOM page;
* non-HTML responses (image/png, application/pdf, text/plain), request, metadata, revisit and
  warcinfo records, a 404 and a 301;
* URLs that a blocklist must catch (host ``ads.blocked.example``, path containing ``porn``, host
  with ``xxx``), a page with almost no text, short pages in languages outside zh/en;
* garbage bytes after the last record, so that warcio raises ``ArchiveLoadFailed`` there (the other
  records still read; a reader counts it as one error).

:func:`generate` returns a manifest describing, for each record, what a correct stage 1 should do
with it (``expect`` / ``reason``), the true charset and how it was declared, and probe strings that
must / must not appear in the extracted text. Output is deterministic for a seed: fixed WARC-Date,
WARC-Record-IDs derived from the seed, gzip members with mtime 0, so the file is byte-identical.

CLI: ``python -m pipeline.prepare.samplegen --output out/sample/sample.warc.gz [--seed N] [--plain]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import random
import struct
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

# Languages a default ``prepare`` keeps; pages in other languages are expected to drop with "lang".
DEFAULT_KEEP_LANGS = ("en", "zh")

# Reason kinds used in the manifest (the stage's own reason constants map onto these families).
KIND_KEPT = None
KIND_URL_BLOCKLIST = "url_blocklist"
KIND_NON_HTML = "non_html"
KIND_HTTP_STATUS = "http_status"
KIND_EMPTY_TEXT = "empty_text"
KIND_LANG = "lang"
KIND_EXACT_DUP = "exact_duplicate"
KIND_ERROR = "error"
KIND_SKIP = "not_a_response"  # request / metadata / revisit / warcinfo: not documents at all

BASE_DATE = dt.datetime(2024, 5, 6, 8, 0, 0)

# ----------------------------------------------------------------------------------------------------
# English text
# ----------------------------------------------------------------------------------------------------

EN_TOPICS: dict[str, dict[str, list[str]]] = {
    "transit": {
        "thing": [
            "bus network",
            "light rail line",
            "cycle lane network",
            "harbour ferry service",
            "night bus service",
            "tram extension",
        ],
        "org": [
            "the regional transport authority",
            "the city council",
            "the county roads department",
            "the metropolitan transit board",
        ],
        "title": [
            "Council backs plan to expand the {thing} in {place}",
            "{place} residents split over new {thing}",
            "What the {thing} overhaul means for commuters in {place}",
        ],
    },
    "science": {
        "thing": [
            "soil bacteria study",
            "coastal erosion survey",
            "honeybee tracking project",
            "glacier monitoring programme",
            "urban heat mapping study",
            "river sediment survey",
        ],
        "org": [
            "researchers at the state university",
            "a team from the national laboratory",
            "the marine research institute",
            "scientists at the agricultural college",
        ],
        "title": [
            "New {thing} in {place} surprises researchers",
            "Early results from the {thing} point to faster change",
            "Inside the {thing} that has been running near {place} since {year}",
        ],
    },
    "business": {
        "thing": [
            "family bakery chain",
            "bicycle repair cooperative",
            "regional dairy",
            "furniture workshop",
            "independent bookshop",
            "solar panel installer",
        ],
        "org": [
            "the chamber of commerce",
            "the local business association",
            "the regional development agency",
            "the small business bureau",
        ],
        "title": [
            "How a {thing} in {place} survived a difficult decade",
            "{place} {thing} plans to double its staff",
            "The {thing} betting on {place} despite rising costs",
        ],
    },
    "software": {
        "thing": [
            "open-source database",
            "text editor",
            "package manager",
            "web framework",
            "compiler toolchain",
            "spreadsheet application",
        ],
        "org": [
            "the project maintainers",
            "the release team",
            "the steering committee",
            "the core developers",
        ],
        "title": [
            "Version {num} of the {thing} ships with a new storage engine",
            "The {thing} team explains its slower release cycle",
            "A closer look at the {thing} after {num} years of development",
        ],
    },
    "sport": {
        "thing": [
            "women's rowing crew",
            "under-19 football side",
            "amateur cycling club",
            "basketball academy",
            "cross-country running team",
            "volleyball league",
        ],
        "org": [
            "the club committee",
            "the regional sports council",
            "the league organisers",
            "the coaching staff",
        ],
        "title": [
            "{place} {thing} reaches its first national final",
            "A season to remember for the {thing} from {place}",
            "Funding worries hang over the {thing} in {place}",
        ],
    },
    "culture": {
        "thing": [
            "textile exhibition",
            "community choir",
            "printmaking workshop",
            "film festival",
            "local history archive",
            "poetry reading series",
        ],
        "org": ["the city museum", "the arts council", "the public library", "the cultural foundation"],
        "title": [
            "The {thing} that brought {place} together",
            "{place} {thing} draws record crowds",
            "Behind the scenes of the {thing} in {place}",
        ],
    },
}

EN_PLACES = [
    "Ashford",
    "Millbrook",
    "Port Ellison",
    "Carden Vale",
    "Northgate",
    "Riverton",
    "Elmswick",
    "Hollow Creek",
    "Bramley Heath",
    "Saltmarsh",
    "Westbury Fields",
    "Kingsmoor",
    "Lanford",
    "Oakridge",
    "Fairhaven",
    "Stonebridge",
]
EN_FIRST = [
    "Maria",
    "James",
    "Aisha",
    "Tomasz",
    "Priya",
    "Daniel",
    "Helen",
    "Kwame",
    "Sofia",
    "Oliver",
    "Grace",
    "Mateo",
    "Ruth",
    "Samuel",
    "Ingrid",
    "Leo",
    "Nadia",
    "Patrick",
]
EN_LAST = [
    "Whitfield",
    "Okafor",
    "Lindqvist",
    "Moreno",
    "Hargreaves",
    "Chen",
    "Kowalski",
    "Ramirez",
    "Fairbairn",
    "Nakamura",
    "Osei",
    "Delaney",
    "Varga",
    "Brennan",
    "Castell",
    "Mbeki",
]
EN_ROLES = [
    "shop owner",
    "teacher",
    "engineer",
    "nurse",
    "retired civil servant",
    "volunteer coordinator",
    "delivery driver",
    "graduate student",
    "farmer",
    "architect",
    "librarian",
    "electrician",
]
EN_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
EN_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]

EN_SENTENCES = [
    "{Org} said on {day} that the {thing} would be expanded over the next {n2} years, a plan that has divided "
    "opinion in {place}.",
    "According to figures published in {month}, about {pct} percent of households in {place} now have some "
    "contact with the {thing} in a typical week.",
    "{person}, who has worked as a {role} in {place} for {n2} years, described the change as long overdue.",
    "\u201cWe have been asking for this since {year},\u201d {last} said. \u201cThe real question is whether "
    "the money will actually arrive this time.\u201d",
    "Critics argue that the budget of {money} is too small for a project of this size and that the final "
    "bill is likely to be considerably higher.",
    "The first phase is expected to begin in {month} and to take roughly {n2} months, weather permitting.",
    "A public consultation drew {n3} written responses, more than twice the number the organisers had "
    "expected.",
    "Not everyone is convinced. {person}, a {role} from {place2}, said the plans had been drawn up without "
    "listening to the people most affected.",
    "{Org} acknowledged that mistakes had been made in the past but insisted that lessons had been learned.",
    "In a statement, {org} said it would publish a detailed timetable before the end of {month}.",
    "The idea is not new: a similar proposal was put forward in {year} but was shelved after a change of "
    "leadership.",
    "Supporters point to {place2}, where a comparable {thing} has been running for {n1} years with few "
    "complaints.",
    "Local businesses have given the plans a cautious welcome, although several owners worry about months "
    "of disruption.",
    "{person} said the most important thing was to keep residents informed at every stage.",
    "Independent analysts estimate that the {thing} could save the area around {money} over a decade.",
    "The numbers, however, depend heavily on assumptions about growth that some economists consider "
    "optimistic.",
    "At a packed meeting in the town hall on {day} evening, more than {n3} people queued to ask questions.",
    "Several speakers raised concerns about noise, parking and the effect on older residents who do not "
    "drive.",
    "Others spoke warmly about what the {thing} had already done for young families in the area.",
    "The debate has also exposed a wider disagreement about how decisions of this kind should be made.",
    "{Org} has promised to review the scheme after {n1} years and to publish the results in full.",
    "For now, the mood in {place} is one of careful optimism mixed with a good deal of fatigue.",
    "\u201cIt is easy to be cynical,\u201d {last} added, \u201cbut I have seen what happens when nobody "
    "bothers to turn up.\u201d",
    "The next meeting is scheduled for the second week of {month} and will be open to the public.",
    "Documents seen by this newspaper show that the estimated cost has risen by {pct} percent since the "
    "original plan was approved.",
    "Officials blamed higher prices for materials and a shortage of skilled workers in the region.",
    "A spokesperson for {org} declined to comment on individual contracts but said the process had been "
    "fair and transparent.",
    "Residents who want to know more can visit an exhibition at the community centre until the end of "
    "{month}.",
    "The scheme will be paid for partly by a national grant and partly by savings elsewhere in the budget.",
    "{person} said she hoped the {thing} would still be serving the town long after the arguments were "
    "forgotten.",
    "Some of the strongest support came from teenagers, who said the current arrangements left them "
    "isolated in the evenings.",
    "A similar debate took place in {place2} last year, where the council eventually adopted a smaller "
    "version of the plan.",
    "Experts caution that it may be several years before the full effects of the {thing} can be measured.",
    "Until then, both sides are likely to point to whatever early evidence supports their view.",
    "The final decision rests with a committee of {n1} members, which is expected to vote in {month}.",
    "Whatever the outcome, few people in {place} expect the argument to end quietly.",
]


def _en_fill(rng: random.Random, topic: dict[str, list[str]], place: str, template: str) -> str:
    org = rng.choice(topic["org"])
    slots = {
        "thing": rng.choice(topic["thing"]),
        "org": org,
        "Org": org[0].upper() + org[1:],
        "place": place,
        "place2": rng.choice([p for p in EN_PLACES if p != place]),
        "person": f"{rng.choice(EN_FIRST)} {rng.choice(EN_LAST)}",
        "last": rng.choice(EN_LAST),
        "role": rng.choice(EN_ROLES),
        "month": rng.choice(EN_MONTHS),
        "day": rng.choice(EN_DAYS),
        "year": str(rng.randint(1998, 2021)),
        "pct": str(rng.randint(6, 78)),
        "n1": str(rng.randint(3, 12)),
        "n2": str(rng.randint(2, 30)),
        "n3": str(rng.randint(120, 4800)),
        "num": f"{rng.randint(1, 9)}.{rng.randint(0, 12)}",
        "money": f"\u00a3{rng.randint(2, 95)}.{rng.randint(1, 9)} million",
    }
    return template.format(**slots)


def en_article(rng: random.Random) -> tuple[str, list[str]]:
    """(title, paragraphs) of a synthetic English news article, ~250-400 words."""
    topic = EN_TOPICS[rng.choice(sorted(EN_TOPICS))]
    place = rng.choice(EN_PLACES)
    title = _en_fill(rng, topic, place, rng.choice(topic["title"]))
    sentences = rng.sample(EN_SENTENCES, k=min(len(EN_SENTENCES), rng.randint(16, 22)))
    paras: list[str] = []
    i = 0
    while i < len(sentences):
        k = rng.randint(2, 4)
        paras.append(" ".join(_en_fill(rng, topic, place, s) for s in sentences[i : i + k]))
        i += k
    return title, paras


# ----------------------------------------------------------------------------------------------------
# Chinese text (simplified; every character is checked to be in GB2312 where a page needs it)
# ----------------------------------------------------------------------------------------------------

ZH_TOPICS: dict[str, dict[str, list[str]]] = {
    "城市": {
        "thing": ["公交线路调整", "老旧小区改造", "社区养老服务", "垃圾分类试点", "夜间经济街区"],
        "org": ["市住建局", "区政府", "市交通运输局", "街道办事处"],
    },
    "科技": {
        "thing": ["新能源电池项目", "农业无人机应用", "智能电网改造", "开源软件社区", "基因测序平台"],
        "org": ["省科技厅", "高新区管委会", "市科学技术协会", "国家重点实验室"],
    },
    "教育": {
        "thing": ["课后服务计划", "乡村学校建设", "职业技能培训", "校园食堂改革", "青少年阅读项目"],
        "org": ["市教育局", "县教育体育局", "省教育厅", "区教师发展中心"],
    },
    "经济": {
        "thing": ["小微企业贷款政策", "农产品直播销售", "外贸订单恢复", "文旅消费活动", "县域物流网络"],
        "org": ["市商务局", "省发展改革委", "人民银行分行", "县农业农村局"],
    },
    "体育": {
        "thing": ["全民健身步道", "青少年足球联赛", "社区篮球场改造", "马拉松赛事", "冰雪运动推广"],
        "org": ["市体育局", "省体育总会", "区文化体育中心", "县全民健身办公室"],
    },
}
ZH_PLACES = [
    "杭州",
    "成都",
    "西安",
    "长沙",
    "青岛",
    "合肥",
    "昆明",
    "南昌",
    "贵阳",
    "太原",
    "兰州",
    "福州",
    "南宁",
    "石家庄",
    "呼和浩特",
    "无锡",
]
ZH_SURNAMES = ["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "马", "朱", "胡", "郭"]
ZH_GIVEN = ["建国", "丽华", "志强", "晓明", "海燕", "文博", "秀英", "国强", "雪梅", "子涵", "俊杰", "红霞"]
ZH_ROLES = [
    "社区工作者",
    "中学教师",
    "出租车司机",
    "个体商户",
    "退休职工",
    "大学生",
    "工程师",
    "护士",
    "农民",
    "快递员",
]
ZH_TITLES = [
    "{place}推进{thing}，居民反响热烈",
    "{place}{thing}取得阶段性进展",
    "记者调查：{place}{thing}进展如何",
    "{org}：{place}将加快{thing}",
    "聚焦{thing}：{place}的探索与实践",
]
ZH_SENTENCES = [
    "记者从{org}获悉，{place}今年将投入{money}万元用于{thing}，预计惠及{n3}户家庭。",
    "据介绍，{thing}自{year}年启动以来，已经覆盖全市{n1}个区县，群众满意度达到百分之{pct}。",
    "{person}是一名{role}，他告诉记者，过去办事要跑好几趟，现在在家门口就能解决。",
    "“以前大家意见很大，现在明显感觉方便多了。”{person}说。",
    "{org}有关负责人表示，下一步将继续完善配套措施，确保各项工作落到实处。",
    "不过，也有部分居民反映，相关信息公开还不够及时，希望有关部门加强沟通。",
    "专家指出，{thing}涉及面广、情况复杂，需要政府、企业和社会各方面共同参与。",
    "今年{month}月，{place}召开专题会议，对{thing}的进度和问题进行了全面梳理。",
    "数据显示，今年前{n1}个月，相关投诉数量同比下降百分之{pct}，服务效率明显提高。",
    "在{place2}，类似的做法已经实施了{n1}年，积累了不少可供借鉴的经验。",
    "{person}在接受采访时说，最关心的还是后续的维护和管理能否跟得上。",
    "为了解决资金不足的问题，{org}探索引入社会资本，并设立了专项补贴。",
    "记者在现场看到，施工人员正在抓紧作业，周边道路的交通秩序总体良好。",
    "有业内人士认为，{thing}的关键在于长效机制，而不是一时的集中整治。",
    "按照计划，第一阶段工作将于{month}月底前完成，第二阶段将在明年全面铺开。",
    "{org}还开通了咨询热线，群众可以通过电话或网上平台反映意见和建议。",
    "一位{role}坦言，刚开始对这项工作并不理解，后来看到实实在在的变化才转变了看法。",
    "据统计，目前全市已有{n3}名志愿者参与到{thing}中来，成为一支重要力量。",
    "在座谈会上，来自不同行业的代表围绕{thing}提出了{n2}条具体建议。",
    "{org}表示，将对这些建议逐条研究，能吸收的尽快吸收，暂时做不到的也会说明原因。",
    "业内专家提醒，推进过程中要注意因地制宜，避免“一刀切”的做法。",
    "随着天气转暖，前来参观和体验的市民越来越多，周末尤其热闹。",
    "不少年轻人也加入进来，用自己的方式记录和分享身边的变化。",
    "{person}笑着说，希望明年这个时候，家门口的变化能更大一些。",
    "从长远看，{thing}不仅改善了居民生活，也为城市发展注入了新的活力。",
    "下一步，{place}将总结试点经验，在更大范围内推广成熟做法。",
    "对此，{org}相关负责人回应称，将加强督导检查，确保资金使用规范透明。",
    "记者了解到，{place}还计划在年内出台配套文件，进一步明确各方责任。",
]


def _zh_fill(rng: random.Random, topic: dict[str, list[str]], place: str, template: str) -> str:
    slots = {
        "thing": rng.choice(topic["thing"]),
        "org": rng.choice(topic["org"]),
        "place": place,
        "place2": rng.choice([p for p in ZH_PLACES if p != place]),
        "person": rng.choice(ZH_SURNAMES) + rng.choice(ZH_GIVEN),
        "role": rng.choice(ZH_ROLES),
        "month": str(rng.randint(1, 12)),
        "year": str(rng.randint(2008, 2022)),
        "pct": str(rng.randint(12, 96)),
        "n1": str(rng.randint(3, 12)),
        "n2": str(rng.randint(8, 60)),
        "n3": str(rng.randint(300, 90000)),
        "money": str(rng.randint(50, 9000)),
    }
    return template.format(**slots)


def zh_article(rng: random.Random) -> tuple[str, list[str]]:
    """(title, paragraphs) of a synthetic Chinese news article, ~500-800 characters."""
    topic = ZH_TOPICS[rng.choice(sorted(ZH_TOPICS))]
    place = rng.choice(ZH_PLACES)
    title = _zh_fill(rng, topic, place, rng.choice(ZH_TITLES))
    sentences = rng.sample(ZH_SENTENCES, k=rng.randint(14, 20))
    paras: list[str] = []
    i = 0
    while i < len(sentences):
        k = rng.randint(2, 4)
        paras.append("".join(_zh_fill(rng, topic, place, s) for s in sentences[i : i + k]))
        i += k
    return title, paras


# ----------------------------------------------------------------------------------------------------
# Other languages (long articles that lid must route away from zh/en, and short pages)
# ----------------------------------------------------------------------------------------------------

OTHER_SENTENCES: dict[str, list[str]] = {
    "de": [
        "Der Gemeinderat von {place} hat am {day} beschlossen, die Stadtbibliothek bis {year} umfassend zu "
        "modernisieren.",
        "Nach Angaben der Verwaltung sollen dafür rund {n} Millionen Euro aus Landesmitteln bereitgestellt "
        "werden.",
        "Viele Bürgerinnen und Bürger begrüßen die Pläne, doch es gibt auch Kritik an den hohen Kosten.",
        "»Wir müssen genau prüfen, ob sich diese Investition langfristig lohnt«, sagte {person} von der "
        "örtlichen Bürgerinitiative.",
        "Die Bauarbeiten sollen im Frühjahr beginnen und etwa {n} Monate dauern.",
        "Während dieser Zeit wird ein Teil des Bestands in ein Ausweichquartier am Marktplatz verlagert.",
        "Besonders Familien mit Kindern nutzen die Bibliothek regelmäßig, wie eine Umfrage gezeigt hat.",
        "Außerdem sind längere Öffnungszeiten am Wochenende und ein größeres Angebot für Senioren geplant.",
        "Die Opposition fordert, dass die Bürger stärker in die Planung einbezogen werden.",
        "Eine öffentliche Informationsveranstaltung findet im nächsten Monat im Rathaus statt.",
        "Schon jetzt gehört die Bibliothek zu den am stärksten besuchten Einrichtungen der ganzen Region.",
        "Ob der Zeitplan eingehalten werden kann, hängt auch von der Lage auf dem Baumarkt ab.",
    ],
    "fr": [
        "La municipalité de {place} a présenté {day} un projet de rénovation du marché couvert du centre-ville.",
        "Selon la mairie, les travaux coûteront environ {n} millions d'euros et dureront près de deux ans.",
        "Les commerçants, inquiets, craignent une baisse importante de leur chiffre d'affaires pendant le "
        "chantier.",
        "« Nous ne sommes pas contre le projet, mais nous voulons être écoutés », explique {person}, "
        "maraîchère depuis vingt ans.",
        "Un marché provisoire sera installé sur la place de l'église à partir du mois de {month}.",
        "L'opposition dénonce un calendrier trop serré et un manque de concertation avec les habitants.",
        "Le maire assure de son côté que toutes les remarques seront étudiées avec attention.",
        "Le bâtiment, construit au début du siècle dernier, souffre d'une toiture vétuste et d'une mauvaise "
        "isolation.",
        "Une réunion publique est prévue à la salle des fêtes avant la fin de l'année.",
        "Pour beaucoup d'habitants, le marché reste avant tout un lieu de rencontre et de convivialité.",
        "Les architectes promettent un espace plus lumineux, plus accessible et mieux ventilé.",
        "Reste à savoir si le budget prévu suffira, compte tenu de la hausse du prix des matériaux.",
    ],
    "es": [
        "El ayuntamiento de {place} aprobó el {day} un plan para ampliar la red de carriles bici en los "
        "próximos {n} años.",
        "La inversión prevista ronda los {n} millones de euros, financiados en parte con fondos europeos.",
        "Los vecinos del barrio antiguo se muestran divididos ante la pérdida de plazas de aparcamiento.",
        "«Es una buena idea, pero hace falta explicarla mejor», señaló {person}, presidenta de la asociación "
        "vecinal.",
        "Según los técnicos municipales, el número de ciclistas se ha duplicado desde el año {year}.",
        "Las obras comenzarán después del verano y se realizarán por fases para reducir las molestias.",
        "La oposición critica que el proyecto no incluya más espacios verdes ni nuevas zonas peatonales.",
        "El alcalde defendió que la ciudad necesita alternativas al coche para mejorar la calidad del aire.",
        "¿Cambiarán realmente los hábitos de los vecinos? Los expertos creen que sí, aunque poco a poco.",
        "En otras ciudades españolas, iniciativas similares han reducido el tráfico en el centro.",
        "El plan se presentará en una reunión abierta en el centro cultural a finales de mes.",
        "Mientras tanto, los comerciantes piden que se mantenga el acceso para la carga y descarga.",
    ],
    "ru": [
        "Администрация города {place} объявила о начале реконструкции центрального парка.",
        "По словам чиновников, работы обойдутся бюджету примерно в {n} миллионов рублей.",
        "Жители района давно просили обновить детские площадки и освещение аллей.",
        "«Мы ждали этого много лет», — рассказал местный житель {person}.",
        "Проект предусматривает новые велосипедные дорожки, скамейки и зону для пожилых людей.",
        "Работы планируется завершить к осени, если погода не внесёт свои коррективы.",
        "Часть горожан опасается, что при реконструкции пострадают старые деревья.",
        "В администрации заверили, что каждое дерево будет обследовано специалистами.",
        "Общественные слушания по проекту прошли в городском доме культуры.",
        "На них пришли несколько сотен человек, многие задавали вопросы о сроках и стоимости.",
        "Эксперты считают, что обновлённый парк станет важным местом отдыха для всего района.",
        "Следующий этап обсуждения пройдёт в начале следующего месяца.",
    ],
    "ja": [
        "{place}市は{day}、駅前の商店街を活性化するための新しい計画を発表しました。",
        "計画によると、空き店舗を改装して若い起業家に安い家賃で貸し出すということです。",
        "市の担当者は「まちのにぎわいを取り戻したい」と話しています。",
        "商店街では、この十年で店の数が半分近くに減っていました。",
        "地元の住民からは、期待の声とともに、駐車場が足りないという意見も出ています。",
        "市は来年の春までに最初の五店舗を開く予定です。",
        "また、週末には地元の農家が野菜を売る朝市も開かれることになりました。",
        "説明会には多くの市民が集まり、熱心に質問をしていました。",
        "専門家は、長く続けるためには地域全体の協力が欠かせないと指摘しています。",
        "市では今後も住民の意見を聞きながら計画を進めていく方針です。",
        "ある店主は「人通りが戻ってくれば、商店街はまだまだ元気になる」と語りました。",
        "計画の詳しい内容は、市のホームページで公開されています。",
    ],
}
OTHER_PLACES = {
    "de": ["Neustadt", "Bergheim", "Lindenau", "Altdorf"],
    "fr": ["Saint-Aubin", "Villeneuve", "Montfort", "Beaulieu"],
    "es": ["Villanueva", "San Martín", "Valdelagua", "Torremolar"],
    "ru": ["Заречный", "Светлогорск", "Озёрск", "Лесной"],
    "ja": ["北浜", "青葉", "若松", "桜台"],
}
OTHER_PEOPLE = {
    "de": ["Jürgen Weiß", "Käthe Müller", "Sabine Förster"],
    "fr": ["Hélène Lefèvre", "Benoît Garçon", "Amélie Rousseau"],
    "es": ["María Núñez", "Begoña Ibáñez", "Lucía Peña"],
    "ru": ["Сергей Иванов", "Ольга Петрова", "Андрей Смирнов"],
    "ja": ["田中", "佐藤", "鈴木"],
}
OTHER_DAYS = {
    "de": ["Montag", "Dienstag", "Mittwoch"],
    "fr": ["lundi", "mardi", "mercredi"],
    "es": ["lunes", "martes", "miércoles"],
    "ru": ["понедельник", "вторник", "среда"],
    "ja": ["月曜日", "火曜日", "水曜日"],
}
OTHER_TITLES = {
    "de": "Neue Pläne für die Stadtbibliothek in {place}",
    "fr": "{place} : le marché couvert va faire peau neuve",
    "es": "{place} ampliará su red de carriles bici",
    "ru": "В городе {place} обновят центральный парк",
    "ja": "{place}市、駅前商店街の活性化計画を発表",
}
SHORT_PAGES = {
    "it": (
        "Orari della biblioteca",
        [
            "La biblioteca comunale resterà chiusa lunedì per lavori di manutenzione.",
            "Il servizio di prestito riprenderà regolarmente martedì mattina.",
        ],
    ),
    "pt": (
        "Aviso aos moradores",
        [
            "A distribuição de água será interrompida amanhã entre as nove e as doze horas.",
            "Pedimos desculpa pelo incómodo causado aos moradores do bairro.",
        ],
    ),
    "nl": (
        "Wegwerkzaamheden",
        [
            "Vanaf maandag is de Dorpsstraat twee weken afgesloten voor al het verkeer.",
            "Fietsers en voetgangers kunnen gebruikmaken van een tijdelijke omleiding.",
        ],
    ),
}


def other_article(rng: random.Random, lang: str) -> tuple[str, list[str]]:
    """(title, paragraphs) in ``lang`` (de, fr, es, ru, ja): 3-4 paragraphs, ~150+ words."""
    place = rng.choice(OTHER_PLACES[lang])
    sentences = list(OTHER_SENTENCES[lang])
    rng.shuffle(sentences)
    slots = {
        "place": place,
        "person": rng.choice(OTHER_PEOPLE[lang]),
        "day": rng.choice(OTHER_DAYS[lang]),
        "n": str(rng.randint(2, 40)),
        "year": str(rng.randint(2005, 2020)),
        "month": rng.choice(["mars", "mai", "juin", "septembre"]),
    }
    filled = [s.format(**slots) for s in sentences]
    joiner = "" if lang == "ja" else " "
    paras = [joiner.join(filled[i : i + 3]) for i in range(0, len(filled), 3)]
    return OTHER_TITLES[lang].format(place=place), paras


# ----------------------------------------------------------------------------------------------------
# Page skins: boilerplate around the article
# ----------------------------------------------------------------------------------------------------

COOKIE_EN = (
    "We use cookies to personalise content and ads and to analyse our traffic. By clicking "
    "Accept all you consent to our use of cookies."
)
SHARE_EN = "Share this article: Facebook | X | LinkedIn | Email | Copy link"
COOKIE_PROBE = "We use cookies to personalise content"
ZH_SHARE = "分享到：微信 微博 QQ空间 复制链接"
ZH_COPYRIGHT = "版权所有 未经授权禁止转载"


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _paras_html(paras: list[str]) -> str:
    return "\n".join(f"<p>{_esc(p)}</p>" for p in paras)


def _related(rng: random.Random, make_title: Callable[[random.Random], str], n: int = 5) -> str:
    return "\n".join(
        f'<li><a href="/story/{rng.randint(10000, 99999)}.html">{_esc(make_title(rng))}</a></li>'
        for _ in range(n)
    )


def _en_headline(rng: random.Random) -> str:
    return en_article(random.Random(rng.random()))[0]


def _zh_headline(rng: random.Random) -> str:
    return zh_article(random.Random(rng.random()))[0]


def skin_news_en(
    rng: random.Random, site: str, title: str, paras: list[str], head_meta: str, date: str
) -> str:
    author = f"{rng.choice(EN_FIRST)} {rng.choice(EN_LAST)}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
{head_meta}<title>{_esc(title)} | {site}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/css/main.css">
<script>window.dataLayer = window.dataLayer || []; function gtag(){{dataLayer.push(arguments);}}</script>
</head>
<body>
<div id="cookie-consent" class="cookie-banner" role="dialog">
<p>{COOKIE_EN} <a href="/privacy">Read our cookie policy</a>.</p>
<button class="accept">Accept all</button> <button class="manage">Manage preferences</button>
</div>
<header class="site-header">
<a class="logo" href="/">{site}</a>
<nav class="main-nav"><ul>
<li><a href="/">Home</a></li><li><a href="/news">News</a></li><li><a href="/business">Business</a></li>
<li><a href="/tech">Technology</a></li><li><a href="/sport">Sport</a></li><li><a href="/culture">Culture</a></li>
<li><a href="/opinion">Opinion</a></li><li><a href="/subscribe">Subscribe</a></li>
</ul></nav>
<form class="search" action="/search"><input name="q" placeholder="Search"></form>
</header>
<main>
<article>
<h1>{_esc(title)}</h1>
<p class="byline">By <a href="/authors/{author.lower().replace(" ", "-")}">{author}</a> &middot; <time>{date}</time></p>
{_paras_html(paras)}
<div class="share">{SHARE_EN}</div>
</article>
<aside class="most-read"><h3>Most read</h3><ul>
{_related(rng, _en_headline)}
</ul></aside>
</main>
<footer class="site-footer">
<ul><li><a href="/about">About us</a></li><li><a href="/contact">Contact</a></li><li><a href="/privacy">Privacy</a></li>
<li><a href="/terms">Terms of use</a></li><li><a href="/advertise">Advertise with us</a></li></ul>
<p>&copy; 2024 {site}. All rights reserved.</p>
</footer>
</body>
</html>
"""


def skin_blog_en(
    rng: random.Random, site: str, title: str, paras: list[str], head_meta: str, date: str
) -> str:
    return f"""<html>
<head>
{head_meta}<title>{_esc(title)} - {site}</title>
<link rel="alternate" type="application/rss+xml" href="/feed.xml">
</head>
<body class="blog">
<div class="topbar"><a href="/">{site}</a> <a href="/archive">Archive</a> <a href="/about">About</a>
<a href="/newsletter">Newsletter</a></div>
<div class="gdpr-notice">This site uses cookies. <a href="/cookies">Learn more</a> <a href="#" class="ok">OK</a></div>
<div id="wrapper">
<div id="content" class="post">
<h2 class="post-title">{_esc(title)}</h2>
<div class="post-meta">Posted on {date} in <a href="/category/local">Local</a></div>
<div class="entry-content">
{_paras_html(paras)}
</div>
<div class="post-tags">Tags: <a href="/tag/community">community</a>, <a href="/tag/local">local</a></div>
<div class="sharedaddy">Like this? Share it: Twitter Facebook Reddit</div>
</div>
<div id="sidebar">
<div class="widget"><h4>Recent posts</h4><ul>
{_related(rng, _en_headline, 4)}
</ul></div>
<div class="widget"><h4>Subscribe</h4><p>Get new posts by email.</p><form><input type="email"><button>Subscribe</button></form></div>
</div>
</div>
<div id="footer">Powered by a static site generator. Theme by the author. Copyright 2024 {site}.</div>
</body>
</html>
"""


def skin_portal_zh(
    rng: random.Random, site: str, title: str, paras: list[str], head_meta: str, date: str
) -> str:
    editor = rng.choice(ZH_SURNAMES) + rng.choice(ZH_GIVEN)
    return f"""<!DOCTYPE html>
<html lang="zh-CN">
<head>
{head_meta}<title>{_esc(title)}_{site}</title>
<meta name="keywords" content="新闻,资讯,{site}">
<script src="/js/common.js"></script>
</head>
<body>
<div class="top-bar"><a href="/">{site}首页</a> | <a href="/login">登录</a> | <a href="/reg">注册</a> | <a href="/app">下载客户端</a></div>
<div class="nav"><ul>
<li><a href="/">首页</a></li><li><a href="/news/">新闻</a></li><li><a href="/finance/">财经</a></li>
<li><a href="/tech/">科技</a></li><li><a href="/sports/">体育</a></li><li><a href="/ent/">娱乐</a></li>
<li><a href="/auto/">汽车</a></li><li><a href="/house/">房产</a></li><li><a href="/edu/">教育</a></li>
</ul></div>
<div class="crumb">当前位置：<a href="/">首页</a> &gt; <a href="/news/">新闻</a> &gt; 正文</div>
<div class="main">
<div class="article">
<h1>{_esc(title)}</h1>
<div class="info"><span>{date}</span> <span>来源：{site}</span></div>
<div class="content" id="artibody">
{_paras_html(paras)}
</div>
<div class="editor">（责任编辑：{editor}）</div>
<div class="share">{ZH_SHARE}</div>
</div>
<div class="side"><h3>热门推荐</h3><ul>
{_related(rng, _zh_headline)}
</ul></div>
</div>
<div class="footer"><p><a href="/about">关于我们</a> | <a href="/contact">联系我们</a> | <a href="/ads">广告服务</a> | <a href="/law">免责声明</a></p>
<p>Copyright &copy; 2024 {site} {ZH_COPYRIGHT} 京ICP备{rng.randint(10000000, 99999999)}号</p></div>
</body>
</html>
"""


def skin_legacy_zh(
    rng: random.Random, site: str, title: str, paras: list[str], head_meta: str, date: str
) -> str:
    """Old GB2312-era portal markup: font tags, centred fixed-width blocks, ids in pinyin."""
    return f"""<html>
<head>
{head_meta}<title>{_esc(title)}--{site}</title>
<style type="text/css">body {{ font-size: 12px; }} .zw p {{ text-indent: 2em; }}</style>
</head>
<body bgcolor="#FFFFFF" topmargin="0">
<center>
<div id="dh" class="nav"><font color="#003399">
<a href="/">首页</a> | <a href="/xw/">新闻中心</a> | <a href="/lt/">论坛</a> | <a href="/bk/">博客</a> | <a href="/sp/">视频</a>
</font></div>
<div id="wz">您现在的位置：<a href="/">{site}</a> &gt;&gt; <a href="/xw/">新闻中心</a></div>
<div id="zhengwen" style="width:760px;text-align:left">
<h2><font color="#CC0000">{_esc(title)}</font></h2>
<div class="time">发布时间：{date}&nbsp;&nbsp;来源：本站&nbsp;&nbsp;点击数：{rng.randint(100, 9999)}</div>
<div class="zw">
{_paras_html(paras)}
</div>
<div class="fx">{ZH_SHARE}</div>
<div class="prev">上一篇：<a href="/xw/{rng.randint(1000, 9999)}.htm">{_esc(_zh_headline(rng))}</a></div>
</div>
<div id="xgxw" class="right"><b>相关新闻</b><ul>
{_related(rng, _zh_headline, 4)}
</ul></div>
<div id="foot">{site} {ZH_COPYRIGHT} 联系电话：010-{rng.randint(60000000, 69999999)}</div>
</center>
</body>
</html>
"""


OTHER_NAV = {
    "de": (
        "Startseite",
        "Politik",
        "Kultur",
        "Impressum",
        "Datenschutz",
        "Diese Website verwendet Cookies, um Ihnen das beste Erlebnis zu bieten.",
    ),
    "fr": (
        "Accueil",
        "Actualités",
        "Culture",
        "Mentions légales",
        "Confidentialité",
        "Ce site utilise des cookies pour améliorer votre expérience de navigation.",
    ),
    "es": (
        "Inicio",
        "Noticias",
        "Cultura",
        "Aviso legal",
        "Privacidad",
        "Este sitio web utiliza cookies para mejorar su experiencia.",
    ),
    "ru": (
        "Главная",
        "Новости",
        "Культура",
        "Контакты",
        "Конфиденциальность",
        "Этот сайт использует файлы cookie для улучшения работы.",
    ),
    "ja": (
        "ホーム",
        "ニュース",
        "地域",
        "お問い合わせ",
        "プライバシー",
        "当サイトではクッキーを使用しています。",
    ),
    "it": ("Home", "Notizie", "Comune", "Contatti", "Privacy", "Questo sito utilizza cookie."),
    "pt": ("Início", "Notícias", "Bairro", "Contactos", "Privacidade", "Este site utiliza cookies."),
    "nl": ("Home", "Nieuws", "Gemeente", "Contact", "Privacy", "Deze website gebruikt cookies."),
}


def skin_generic(lang: str) -> Callable[..., str]:
    home, news, culture, contact, privacy, cookie = OTHER_NAV[lang]

    def skin(rng: random.Random, site: str, title: str, paras: list[str], head_meta: str, date: str) -> str:
        return f"""<!DOCTYPE html>
<html lang="{lang}">
<head>
{head_meta}<title>{_esc(title)} - {site}</title>
</head>
<body>
<div class="cookies">{_esc(cookie)} <button>OK</button></div>
<header><nav><a href="/">{home}</a> <a href="/news">{news}</a> <a href="/culture">{culture}</a></nav></header>
<main><article>
<h1>{_esc(title)}</h1>
<p class="date">{date}</p>
{_paras_html(paras)}
</article></main>
<footer><a href="/contact">{contact}</a> &middot; <a href="/privacy">{privacy}</a> &middot; &copy; 2024 {site}</footer>
</body>
</html>
"""

    return skin


def page_almost_empty(site: str) -> str:
    """A photo gallery: navigation, captions of two words, footer: extraction finds no main text."""
    imgs = "\n".join(
        f'<figure><img src="/img/gallery/{i:03d}.jpg" alt=""><figcaption>Photo {i}</figcaption></figure>'
        for i in range(1, 9)
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Gallery | {site}</title></head>
<body>
<nav><a href="/">Home</a> <a href="/gallery">Gallery</a> <a href="/contact">Contact</a></nav>
<div class="gallery">
{imgs}
</div>
<footer>&copy; 2024 {site}</footer>
</body></html>
"""


# ----------------------------------------------------------------------------------------------------
# Binary payloads
# ----------------------------------------------------------------------------------------------------


def tiny_png(rng: random.Random, w: int = 8, h: int = 8) -> bytes:
    """A valid w x h RGB PNG with seeded pixel colours."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    rows = b"".join(b"\x00" + bytes(rng.randrange(256) for _ in range(3 * w)) for _ in range(h))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def tiny_pdf(text: str) -> bytes:
    """A minimal one-page PDF 1.4 with one line of text (valid xref offsets)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(out.tell())
        out.write(f"{i} 0 obj\n".encode() + o + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode())
    for off in offsets:
        out.write(f"{off:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


# ----------------------------------------------------------------------------------------------------
# Record plan
# ----------------------------------------------------------------------------------------------------


@dataclass
class Page:
    """One planned HTTP response: body bytes + headers + what stage 1 should make of it."""

    url: str
    body: bytes
    content_type: str | None
    status: str = "200 OK"
    extra_headers: list[tuple[str, str]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


EN_SITES = [
    "www.ashford-herald.example",
    "news.northgate-post.example",
    "www.riverton-times.example",
    "daily.millbrook-courier.example",
]
EN_BLOGS = ["notes.elmswick-walker.example", "blog.saltmarsh-life.example"]
ZH_SITES = ["news.dongfang-ribao.example", "www.xinwen-zhongxin.example", "finance.huanan-wang.example"]
ZH_LEGACY = ["www.gbk-portal.example", "bbs.gb2312-luntan.example"]
OTHER_SITES = {
    "de": "www.neustadt-anzeiger.example",
    "fr": "www.le-petit-courrier.example",
    "es": "www.diario-villanueva.example",
    "ru": "news.zarechny-vesti.example",
    "ja": "www.kitahama-shimbun.example",
    "it": "www.comune-vallebella.example",
    "pt": "www.junta-freguesia.example",
    "nl": "www.gemeente-dorp.example",
}


def _meta(charset: str | None, style: str = "html5") -> str:
    if charset is None:
        return ""
    if style == "http-equiv":
        return f'<meta http-equiv="Content-Type" content="text/html; charset={charset}">\n'
    return f'<meta charset="{charset}">\n'


def _ct(charset: str | None, style: str = "") -> str:
    if charset is None:
        return "text/html"
    if style == "quoted":
        return f'text/html; charset="{charset}"'
    if style == "upper":
        return f"TEXT/HTML; Charset={charset.upper()}"
    return f"text/html; charset={charset}"


def _slug(rng: random.Random, title: str) -> str:
    words = [w for w in "".join(c.lower() if c.isascii() and c.isalnum() else " " for c in title).split()][:6]
    base = "-".join(words) if words else "article"
    return f"{base}-{rng.randint(100000, 999999)}"


def _date_str(rng: random.Random) -> str:
    d = BASE_DATE - dt.timedelta(days=rng.randint(0, 200))
    return d.strftime("%Y-%m-%d")


def _probe(paras: list[str], lang: str) -> str:
    """A distinctive chunk of the article that a correct extraction must contain."""
    p = paras[min(1, len(paras) - 1)]
    if lang in ("zh", "ja"):
        return p[:24]
    return " ".join(p.split()[:10])


def _words(paras: list[str], lang: str) -> int:
    return sum(len(p) for p in paras) if lang in ("zh", "ja") else sum(len(p.split()) for p in paras)


class _Planner:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.pages: list[Page] = []

    def article_page(
        self,
        lang: str,
        title: str,
        paras: list[str],
        *,
        site: str,
        skin: Callable[..., str],
        charset: str = "utf-8",
        header_cs: str | None = None,
        meta_cs: str | None = None,
        meta_style: str = "html5",
        ct_style: str = "",
        bom: bool = False,
        url: str | None = None,
        charset_source: str | None = None,
        **info: Any,
    ) -> Page:
        rng = self.rng
        html = skin(rng, site, title, paras, _meta(meta_cs, meta_style), _date_str(rng))
        body = html.encode(charset)  # strict: a template char outside the charset is a bug here
        if bom:
            body = b"\xef\xbb\xbf" + body
        if url is None:
            path = (
                "/news/" if lang != "zh" else f"/{rng.choice(['xw', 'news', 'a'])}/{rng.randint(2019, 2024)}"
            )
            url = f"https://{site}{path.rstrip('/')}/{_slug(rng, title)}.html"
        if charset_source is None:
            charset_source = (
                "bom"
                if bom
                else "header+meta"
                if header_cs and meta_cs
                else "header"
                if header_cs
                else "meta"
                if meta_cs
                else "none"
            )
        page = Page(url=url, body=body, content_type=_ct(header_cs, ct_style))
        page.info = {
            "kind": "html",
            "lang": lang,
            "charset": charset,
            "charset_source": charset_source,
            "declared_header": header_cs,
            "declared_meta": meta_cs,
            "title": title,
            "probe": _probe(paras, lang),
            "words": _words(paras, lang),
            **info,
        }
        self.pages.append(page)
        return page


def _near_dup(rng: random.Random, paras: list[str], lang: str, n_changes: int = 4) -> list[str]:
    """Change a few words (en: word swaps; zh: a few characters in one sentence) of ``paras``."""
    out = list(paras)
    if lang == "zh":
        subs = [
            ("记者", "本报记者"),
            ("今年", "今年以来"),
            ("表示", "指出"),
            ("市民", "群众"),
            ("明显", "显著"),
        ]
        done = 0
        for a, b in subs:
            for i, p in enumerate(out):
                if a in p and done < n_changes:
                    out[i] = p.replace(a, b, 1)
                    done += 1
                    break
        out[-1] = out[-1] + "（完）"
        return out
    subs_en = {
        "said": "stated",
        "about": "roughly",
        "residents": "locals",
        "several": "a number of",
        "people": "residents",
        "expected": "anticipated",
        "plans": "proposals",
        "year": "season",
    }
    done = 0
    for i, p in enumerate(out):
        words = p.split(" ")
        for j, w in enumerate(words):
            if w in subs_en and done < n_changes and rng.random() < 0.6:
                words[j] = subs_en[w]
                done += 1
        out[i] = " ".join(words)
    if done == 0:
        out[0] = out[0] + " Updated."
    return out


def _plan(seed: int, n_articles: int) -> tuple[list[Page], list[dict[str, Any]]]:
    """Plan every response page (in file order) plus the extra record specs."""
    pl = _Planner(seed)
    rng = pl.rng
    news, blog, portal, legacy = skin_news_en, skin_blog_en, skin_portal_zh, skin_legacy_zh

    # --- charset / language specials (fixed set) ---
    t, p = zh_article(rng)
    gbk_orig = pl.article_page(
        "zh",
        t,
        p,
        site=ZH_LEGACY[0],
        skin=legacy,
        charset="gbk",
        header_cs="gbk",
        meta_cs="gbk",
        meta_style="http-equiv",
    )
    # same article in UTF-8 on another site: exact duplicate after correct decoding
    pl.article_page(
        "zh",
        t,
        p,
        site=ZH_SITES[0],
        skin=portal,
        charset="utf-8",
        header_cs="utf-8",
        meta_cs="utf-8",
        duplicate_of=gbk_orig.url,
        reason=KIND_EXACT_DUP,
    )
    t, p = zh_article(rng)
    pl.article_page("zh", t, p, site=ZH_LEGACY[0], skin=legacy, charset="gbk", header_cs="GBK")
    t, p = zh_article(rng)
    pl.article_page(
        "zh",
        t,
        p,
        site=ZH_LEGACY[1],
        skin=legacy,
        charset="gb2312",
        meta_cs="gb2312",
        meta_style="http-equiv",
    )
    t, p = zh_article(rng)
    pl.article_page(
        "zh", t, p, site=ZH_LEGACY[1], skin=legacy, charset="gb2312", header_cs="gb2312", ct_style="quoted"
    )
    t, p = zh_article(rng)
    pl.article_page("zh", t, p, site=ZH_LEGACY[0], skin=legacy, charset="gbk")  # no declaration: detector
    t, p = zh_article(rng)
    pl.article_page("zh", t, p, site=ZH_SITES[2], skin=portal, charset="gb2312")  # no declaration: detector
    # GB2312 label, GBK-only bytes (镕 and 喆 are outside GB2312): decoders must use the GBK superset
    t, p = zh_article(rng)
    p = [p[0] + "现场负责人朱镕表示，工程进度总体顺利。", *p[1:-1], p[-1] + "志愿者王喆说，大家都很期待。"]
    assert not _encodable(p[0], "gb2312")
    pl.article_page(
        "zh",
        t,
        p,
        site=ZH_LEGACY[1],
        skin=legacy,
        charset="gbk",
        meta_cs="gb2312",
        charset_source="meta(gb2312 label, gbk bytes)",
    )
    t, p = zh_article(rng)
    pl.article_page("zh", t, p, site=ZH_SITES[1], skin=portal, charset="utf-8", bom=True)
    t, p = en_article(rng)
    pl.article_page("en", t, p, site=EN_SITES[2], skin=news, charset="utf-8", bom=True, meta_cs="utf-8")

    for lang, cs, hdr, meta, extra in [
        ("ja", "shift_jis", None, "Shift_JIS", {}),
        ("ja", "shift_jis", "Shift_JIS", None, {"ct_style": "upper"}),
        ("de", "iso-8859-1", "ISO-8859-1", None, {}),
        ("de", "iso-8859-1", None, "iso-8859-1", {"meta_style": "http-equiv"}),
        ("de", "iso-8859-1", None, None, {}),
        (
            "fr",
            "windows-1252",
            "iso-8859-1",
            None,
            {"charset_source": "header(iso-8859-1 label, cp1252 bytes)", "cp1252_extra": True},
        ),
        ("fr", "windows-1252", None, "windows-1252", {"cp1252_extra": True}),
        ("es", "iso-8859-1", "iso-8859-1", "iso-8859-1", {}),
        ("es", "utf-8", "utf-8", None, {}),
        ("ru", "windows-1251", None, "windows-1251", {}),
        ("ru", "utf-8", None, "utf-8", {}),
    ]:
        t, p = other_article(rng, lang)
        if extra.pop("cp1252_extra", False):
            # curly quotes, euro sign and the oe ligature live only in windows-1252, not in ISO-8859-1
            p = [
                p[0] + " Le budget atteint 3\u00a0millions d\u2019euros, soit 12\u00a0\u20ac par habitant.",
                *p[1:-1],
                p[-1] + " \u00ab\u00a0C\u2019est une \u0153uvre collective\u00a0\u00bb, conclut le maire.",
            ]
        pl.article_page(
            lang,
            t,
            p,
            site=OTHER_SITES[lang],
            skin=skin_generic(lang),
            charset=cs,
            header_cs=hdr,
            meta_cs=meta,
            reason=KIND_LANG,
            **extra,
        )

    for lang, (t, p) in SHORT_PAGES.items():
        pl.article_page(
            lang,
            t,
            list(p),
            site=OTHER_SITES[lang],
            skin=skin_generic(lang),
            header_cs="utf-8",
            reason=KIND_LANG,
            short=True,
        )

    # --- URL blocklist (ordinary articles on blocked URLs) ---
    for url in [
        f"https://ads.blocked.example/promo/{rng.randint(1000, 9999)}.html",
        f"http://ads.blocked.example/landing?id={rng.randint(1000, 9999)}",
        f"https://free-videos.example/porn/clip-{rng.randint(1000, 9999)}.html",
        f"https://xxx-deals.example/offer-{rng.randint(1000, 9999)}.html",
    ]:
        t, p = en_article(rng)
        pl.article_page(
            "en",
            t,
            p,
            site=url.split("/")[2],
            skin=news,
            header_cs="utf-8",
            url=url,
            reason=KIND_URL_BLOCKLIST,
        )

    # --- almost no text ---
    for site in (EN_SITES[0], EN_BLOGS[1]):
        page = Page(
            url=f"https://{site}/gallery/{rng.randint(100, 999)}.html",
            body=page_almost_empty(site).encode("utf-8"),
            content_type="text/html; charset=utf-8",
        )
        page.info = {
            "kind": "html",
            "lang": None,
            "charset": "utf-8",
            "charset_source": "header+meta",
            "declared_header": "utf-8",
            "declared_meta": "utf-8",
            "reason": KIND_EMPTY_TEXT,
            "title": None,
            "probe": None,
            "words": 0,
        }
        pl.pages.append(page)

    # --- bulk en/zh articles on varied skins/charset declarations, with duplicates ---
    fixed = len(pl.pages)
    n_bulk = n_articles - fixed
    if n_bulk < 12:
        raise ValueError(
            f"n_articles={n_articles} is too small: the fixed special pages alone are {fixed}; "
            f"use n_articles >= {fixed + 12}"
        )
    n_exact, n_near = max(2, n_bulk // 12), max(2, n_bulk // 14)
    n_unique = n_bulk - n_exact - n_near
    originals: list[tuple[str, str, list[str], Page]] = []
    for i in range(n_unique):
        lang = "en" if i % 5 in (0, 1, 3) else "zh"  # 60 % en, 40 % zh
        if lang == "en":
            t, p = en_article(rng)
            if i % 3 == 0:
                site, skin = rng.choice(EN_BLOGS), blog
            else:
                site, skin = rng.choice(EN_SITES), news
            hdr, meta = rng.choice([("utf-8", "utf-8"), ("UTF-8", None), (None, "utf-8"), (None, None)])
        else:
            t, p = zh_article(rng)
            site, skin = rng.choice(ZH_SITES), portal
            hdr, meta = rng.choice([("utf-8", "utf-8"), ("utf-8", None), (None, "UTF-8")])
        page = pl.article_page(lang, t, p, site=site, skin=skin, header_cs=hdr, meta_cs=meta)
        originals.append((lang, t, p, page))
    picks = rng.sample(range(len(originals)), k=n_exact + n_near)
    for j, idx in enumerate(picks):
        lang, t, p, orig = originals[idx]
        # the copy lives on another site with another skin, so only the article text is shared
        if lang == "en":
            skin = blog if orig.url.split("/")[2] not in EN_BLOGS else news
            site = rng.choice([s for s in EN_SITES + EN_BLOGS if s != orig.url.split("/")[2]])
        else:
            skin = legacy if j % 2 else portal
            site = rng.choice([s for s in ZH_SITES if s != orig.url.split("/")[2]])
        if j < n_exact:
            pl.article_page(
                lang,
                t,
                p,
                site=site,
                skin=skin,
                header_cs="utf-8",
                duplicate_of=orig.url,
                reason=KIND_EXACT_DUP,
            )
        else:
            pl.article_page(
                lang,
                t,
                _near_dup(rng, p, lang),
                site=site,
                skin=skin,
                header_cs="utf-8",
                near_duplicate_of=orig.url,
            )

    # Shuffle the bulk and specials together so the record kinds interleave in the file, but keep
    # every duplicate after its original (the "first seen" copy is the one the manifest calls original).
    order = list(range(len(pl.pages)))
    rng.shuffle(order)
    pos = {pl.pages[i].url: k for k, i in enumerate(order)}
    for pg in pl.pages:
        src = pg.info.get("duplicate_of") or pg.info.get("near_duplicate_of")
        if src and pos[src] > pos[pg.url]:
            pos[src], pos[pg.url] = pos[pg.url], pos[src]
    pages = sorted(pl.pages, key=lambda pg: pos[pg.url])
    return pages, []


def _encodable(s: str, enc: str) -> bool:
    try:
        s.encode(enc)
        return True
    except UnicodeEncodeError:
        return False


# ----------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------


class _Ids:
    def __init__(self, seed: int):
        self.seed = seed
        self.n = 0
        self.t = BASE_DATE

    def next(self) -> tuple[str, str]:
        self.n += 1
        self.t += dt.timedelta(seconds=17 + (self.n * 7919) % 41)
        h = hashlib.sha1(f"samplegen:{self.seed}:{self.n}".encode()).digest()[:16]
        return f"<urn:uuid:{uuid.UUID(bytes=h, version=4)}>", self.t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _http(status: str, headers: list[tuple[str, str]]) -> StatusAndHeaders:
    return StatusAndHeaders(status, headers, protocol="HTTP/1.1")


def _server_headers(content_type: str | None, body: bytes) -> list[tuple[str, str]]:
    hs = [("Date", "Mon, 06 May 2024 08:00:00 GMT"), ("Server", "nginx")]
    if content_type is not None:
        hs.append(("Content-Type", content_type))
    hs.append(("Content-Length", str(len(body))))
    return hs


def generate(path: str, seed: int = 0, n_articles: int = 120, plain: bool | None = None) -> dict[str, Any]:
    """Write the sample crawl to ``path`` and return its manifest.

    ``n_articles`` is the number of HTML 200 responses (articles, duplicates, blocked-URL, empty and
    other-language pages); a handful of other records (warcinfo, request, metadata, revisit, PNG,
    PDF, text/plain, 404, 301) and a corrupt tail come on top. ``plain`` writes an uncompressed WARC;
    by default the file is gzipped (one member per record) unless ``path`` does not end in ``.gz``.

    The manifest: ``{"seed", "path", "n_records", "counts": {reason: n}, "records": [...]}`` where each
    record has ``url``, ``warc_type``, ``record_id``, ``offset``, ``status``, ``content_type``,
    ``expect`` ("kept" | "drop" | "skip" | "error"), ``reason`` (None for kept; a family from this
    module's KIND_* constants), and for HTML pages ``lang``, ``charset`` (the true encoding),
    ``charset_source``, ``title``, ``probe`` (text the extraction must contain), ``words``, and
    ``duplicate_of`` / ``near_duplicate_of`` (URL of the first-written copy). ``lang`` expectations
    assume the default kept languages en and zh.
    """
    if plain is None:
        plain = not str(path).endswith(".gz")
    rng = random.Random(seed * 1_000_003 + 7)
    pages, _ = _plan(seed, n_articles)
    ids = _Ids(seed)
    out_path = Path(path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=not plain)

    def write(
        rec_type: str,
        url: str,
        payload: bytes | None,
        http: StatusAndHeaders | None,
        extra: dict[str, str] | None = None,
        warc_ct: str = "",
    ) -> tuple[str, int]:
        rid, date = ids.next()
        hdrs = {"WARC-Record-ID": rid, "WARC-Date": date, **(extra or {})}
        if rec_type in ("response", "request") and url:
            hdrs["WARC-IP-Address"] = f"192.0.2.{1 + (hash_int(url) % 250)}"
        rec = writer.create_warc_record(
            url,
            rec_type,
            payload=io.BytesIO(payload or b""),
            length=len(payload or b""),
            http_headers=http,
            warc_headers_dict=hdrs,
            warc_content_type=warc_ct,
        )
        offset = buf.tell()
        writer.write_record(rec)
        return rid, offset

    fields = (
        f"software: dots-data samplegen\r\nformat: WARC File Format 1.0\r\n"
        f"description: synthetic sample crawl, seed {seed}\r\nisPartOf: sample-{seed}\r\n"
    ).encode()
    rid, off = write(
        "warcinfo", "", fields, None, {"WARC-Filename": out_path.name}, warc_ct="application/warc-fields"
    )
    records.append(
        {
            "url": None,
            "warc_type": "warcinfo",
            "record_id": rid,
            "offset": off,
            "expect": "skip",
            "reason": KIND_SKIP,
        }
    )

    # the non-article records, spread evenly between the pages (so every kind exists at any size)
    extra_kinds = [
        "request",
        "metadata",
        "png",
        "pdf",
        "text",
        "404",
        "301",
        "robots",
        "revisit",
        "request",
        "metadata",
    ]
    extras_at = {(k + 1) * len(pages) // (len(extra_kinds) + 1): kind for k, kind in enumerate(extra_kinds)}
    last_response: dict[str, Any] = {}
    for i, page in enumerate(pages):
        kind = extras_at.get(i)
        if kind:
            records.extend(_write_extra(kind, rng, write, last_response))
        if kind == "request":
            # a request record right before the response it belongs to
            rid_req, off_req = write(
                "request",
                page.url,
                None,
                StatusAndHeaders(
                    f"GET /{page.url.split('/', 3)[-1]} HTTP/1.1",
                    [
                        ("Host", page.url.split("/")[2]),
                        ("User-Agent", "dots-data-samplegen/1.0"),
                        ("Accept", "text/html"),
                    ],
                    is_http_request=True,
                ),
            )
            records.append(
                {
                    "url": page.url,
                    "warc_type": "request",
                    "record_id": rid_req,
                    "offset": off_req,
                    "expect": "skip",
                    "reason": KIND_SKIP,
                }
            )
        hdrs = _server_headers(page.content_type, page.body) + page.extra_headers
        rid, off = write("response", page.url, page.body, _http(page.status, hdrs))
        reason = page.info.get("reason", KIND_KEPT)
        rec = {
            "url": page.url,
            "warc_type": "response",
            "record_id": rid,
            "offset": off,
            "status": int(page.status.split()[0]),
            "content_type": page.content_type,
            "expect": "kept" if reason is None else "drop",
            "reason": reason,
            **{k: v for k, v in page.info.items() if k != "reason"},
        }
        records.append(rec)
        last_response = rec

    body = buf.getvalue()
    corrupt_offset = len(body)
    # garbage bytes after the last good record (an interrupted upload): warcio raises
    # ArchiveLoadFailed when it gets there, also with arc2warc=True (no spaces, so it can't pass for
    # an ARC header line either)
    noise = bytes(b for b in (rng.randrange(256) for _ in range(200)) if b not in b" \r\n\t")
    garbage = b"\x00\x00\x13\x37" + noise[:96] + b"\r\n"
    body += garbage
    records.append(
        {
            "url": None,
            "warc_type": "corrupt",
            "record_id": None,
            "offset": corrupt_offset,
            "expect": "error",
            "reason": KIND_ERROR,
        }
    )
    out_path.write_bytes(body)

    counts: dict[str, int] = {}
    for r in records:
        key = r["reason"] or "kept"
        counts[key] = counts.get(key, 0) + 1
    return {
        "seed": seed,
        "path": str(out_path),
        "gzip": not plain,
        "n_records": len(records),
        "n_articles": n_articles,
        "keep_langs": list(DEFAULT_KEEP_LANGS),
        "counts": counts,
        "records": records,
    }


def hash_int(s: str) -> int:
    """Stable (process-independent) small hash of a string."""
    return int.from_bytes(hashlib.md5(s.encode()).digest()[:4], "big")


def _write_extra(
    kind: str, rng: random.Random, write: Callable[..., tuple[str, int]], last: dict[str, Any]
) -> list[dict[str, Any]]:
    site = rng.choice(EN_SITES)
    if kind == "request":
        return []  # written by the caller, next to its response
    if kind == "metadata":
        if not last:
            return []
        payload = (
            f"via: https://{site}/\r\nhopsFromSeed: L\r\nfetchTimeMs: {rng.randint(40, 900)}\r\n"
            f"outlinks: {rng.randint(10, 90)}\r\n"
        ).encode()
        rid, off = write(
            "metadata",
            last["url"],
            payload,
            None,
            {"WARC-Concurrent-To": last["record_id"]},
            warc_ct="application/warc-fields",
        )
        return [
            {
                "url": last["url"],
                "warc_type": "metadata",
                "record_id": rid,
                "offset": off,
                "expect": "skip",
                "reason": KIND_SKIP,
            }
        ]
    if kind == "revisit":
        if not last:
            return []
        url = last["url"]
        http = _http("200 OK", [("Content-Type", last.get("content_type") or "text/html")])
        rid, off = write(
            "revisit",
            url,
            None,
            http,
            {
                "WARC-Profile": "http://netpreserve.org/warc/1.0/revisit/identical-payload-digest",
                "WARC-Refers-To-Target-URI": url,
                "WARC-Payload-Digest": "sha1:" + "A" * 32,
            },
        )
        return [
            {
                "url": url,
                "warc_type": "revisit",
                "record_id": rid,
                "offset": off,
                "expect": "skip",
                "reason": KIND_SKIP,
            }
        ]
    if kind == "png":
        url, ct, body, status = (
            f"https://{site}/img/logo-{rng.randint(1, 99)}.png",
            "image/png",
            tiny_png(rng),
            "200 OK",
        )
    elif kind == "pdf":
        url, ct, status = (
            f"https://{site}/files/annual-report-{rng.randint(2015, 2023)}.pdf",
            "application/pdf",
            "200 OK",
        )
        body = tiny_pdf("Annual report of the Ashford Herald community fund")
    elif kind == "text":
        t, p = en_article(rng)
        url, ct, status = (
            f"https://{site}/export/{rng.randint(100, 999)}.txt",
            "text/plain; charset=utf-8",
            "200 OK",
        )
        body = (t + "\n\n" + "\n\n".join(p) + "\n").encode()
    elif kind == "robots":
        url, ct, status = f"https://{site}/robots.txt", "text/plain", "200 OK"
        body = b"User-agent: *\nDisallow: /search\nDisallow: /admin/\nSitemap: /sitemap.xml\n"
    elif kind == "404":
        url, ct, status = (
            f"https://{site}/news/this-story-was-removed-{rng.randint(1, 999)}.html",
            "text/html; charset=utf-8",
            "404 Not Found",
        )
        body = (
            b"<!DOCTYPE html><html><head><title>404 Not Found</title></head><body><h1>Page not found</h1>"
            b"<p>Sorry, the page you are looking for does not exist or has been moved.</p>"
            b'<p><a href="/">Back to the home page</a></p></body></html>'
        )
    elif kind == "301":
        url, ct, status = (
            f"http://{site}/old/story-{rng.randint(1, 999)}",
            "text/html",
            "301 Moved Permanently",
        )
        body = b"<html><head><title>301 Moved Permanently</title></head><body>Moved</body></html>"
    else:
        raise ValueError(kind)
    hdrs = _server_headers(ct, body)
    if kind == "301":
        hdrs.append(("Location", url.replace("http://", "https://").replace("/old/", "/news/") + ".html"))
    rid, off = write("response", url, body, _http(status, hdrs))
    reason = KIND_HTTP_STATUS if kind in ("404", "301") else KIND_NON_HTML
    return [
        {
            "url": url,
            "warc_type": "response",
            "record_id": rid,
            "offset": off,
            "status": int(status.split()[0]),
            "content_type": ct,
            "expect": "drop",
            "reason": reason,
            "kind": kind,
        }
    ]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m pipeline.prepare.samplegen", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--output", required=True, help="WARC file to write (e.g. out/sample/sample.warc.gz)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-articles", type=int, default=120, help="number of HTML 200 responses")
    ap.add_argument("--plain", action="store_true", help="write an uncompressed WARC")
    ap.add_argument(
        "--manifest",
        default=None,
        help="where to write the manifest JSON (default: next to the WARC, *.manifest.json)",
    )
    args = ap.parse_args(argv)
    manifest = generate(args.output, seed=args.seed, n_articles=args.n_articles, plain=args.plain)
    mpath = args.manifest
    if mpath is None:
        stem = args.output
        for suf in (".gz", ".warc"):
            stem = stem[: -len(suf)] if stem.endswith(suf) else stem
        mpath = stem + ".manifest.json"
    Path(mpath).write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(
        f"wrote {args.output} ({manifest['n_records']} records) and {mpath}: {json.dumps(manifest['counts'])}"
    )


if __name__ == "__main__":
    main()
