// Words of the console: 简体中文 first, English on a switch (kept in this browser's local storage).
const LANG_KEY = "ve.lang";

const zh = {
  title: "消费券引擎 控制台", brand: "消费券引擎 控制台", signout: "退出", footer: "消费券引擎 · 数字人民币智能合约消费券 · 本页不从其他站点加载任何内容",
  "role.gov": "政府", "role.auditor": "审计", "role.admin": "平台运营",
  "nav.campaigns": "活动", "nav.editor": "合约编辑器", "nav.ledger": "账本", "nav.verify": "核验", "nav.issuers": "发行方", "nav.merchants": "商户", "nav.tokens": "令牌",
  "signin.title": "登录", "signin.help": "请输入平台发给您的访问令牌（政府、审计或运营）。", "signin.token": "访问令牌", "signin.submit": "登录",
  "signin.storage": "令牌只保存在本标签页的会话存储中，关闭标签页即清除，不会出现在网址里。", "signin.bad": "令牌无效或已吊销。",
  "signin.norole": "此令牌的角色没有控制台视图。", "signin.expired": "会话已失效，请重新登录。",
  "campaigns.title": "活动", "campaigns.none": "暂无活动", "campaigns.new": "用合约新建活动",
  "campaign.name": "名称", "campaign.status": "状态", "campaign.issuer": "发行方", "campaign.own": "关系", "campaign.yours": "本级发行", "campaign.cofunded": "共同出资",
  "campaign.budget": "预算", "campaign.quantity": "数量", "campaign.created": "创建时间", "campaign.id": "活动编号", "campaign.funders": "出资方",
  "campaign.funder": "出资方", "campaign.share": "份额", "campaign.funded_part": "已注资", "campaign.terms": "券面条款与有效期", "campaign.contract": "合约原文",
  "status.draft": "草稿", "status.funded": "已注资", "status.active": "进行中", "status.paused": "已暂停", "status.closed": "已结束",
  "action.fund": "注资（锁定预算）", "action.activate": "启动", "action.pause": "暂停", "action.close": "结束并退回余额", "action.close_confirm": "结束活动将作废未使用的券并把余额退回出资方。确定吗？",
  "fig.budget": "预算", "fig.funded": "已注资", "fig.redeemed": "已核销补贴", "fig.refunded": "退款退回", "fig.clawed_back": "追回", "fig.returned": "退回财政",
  "fig.outstanding": "资金池余额", "fig.burn": "消耗进度", "fig.vouchers": "已用券 / 已发券", "fig.leverage": "撬动比",
  "chart.burn_down": "资金消耗（按日）", "chart.spent_per_day": "当日净核销", "chart.remaining": "剩余资金", "chart.by_region": "按地区核销", "chart.by_mcc": "按行业核销",
  "chart.leverage": "撬动比走势（累计）", "chart.fund_flow": "资金流向", "chart.redeemed": "核销补贴", "chart.total_redeemed": "核销合计", "chart.total_refunded": "退款退回合计",
  "chart.redemptions": "笔", "chart.orders": "带动消费", "chart.subsidy": "净补贴", "chart.ratio_axis": "倍",
  "flow.fiscal": "财政", "flow.escrow": "活动资金池", "flow.merchants": "商户（核销）", "flow.returned": "退回财政", "flow.outstanding": "资金池余额",
  "flow.refunded": "退款退回资金池", "flow.clawed_back": "追回", "flow.kept": "商户实得", "flow.unfunded": "活动尚未注资，还没有资金流动。",
  "stats.as_of": "统计已汇总至账本第 {seq} 笔（账本共 {head} 笔），更新于 {at}；统计比账本晚约一秒。", "stats.none": "还没有核销。",
  "editor.title": "合约编辑器", "editor.help": "边写边检查：错误标在所在的行和列。右侧可用一笔样例支付试算补贴。", "editor.source": "合约文本",
  "editor.checking": "检查中…", "editor.typing": "输入中…", "editor.ok": "合约有效", "editor.errors": "{n} 处错误", "editor.at": "第 {line} 行，第 {column} 列", "editor.warning": "警告：",
  "editor.diagnostics": "检查结果", "editor.field": "项目", "editor.value": "值", "editor.create": "用此合约创建活动",
  "sample.title": "样例支付试算", "sample.mcc": "商户行业 MCC", "sample.region": "商户地区", "sample.tags": "商户标签", "sample.at": "支付时间", "sample.amount": "订单金额（元）",
  "sample.holder_json": "持券人属性（JSON，可空）", "sample.explain": "试算", "sample.settles": "可以核销：补贴 {subsidy}，持券人支付 {payable}",
  "sample.refused": "不能核销：{code}", "sample.where": "位置", "sample.condition": "条件", "sample.actual": "实际", "sample.expected": "要求",
  "sample.holder": "持券人", "sample.payment": "支付", "sample.bad_amount": "金额请写成元，最多两位小数，例如 120.00", "sample.bad_holder": "持券人属性不是有效的 JSON",
  "ledger.title": "账本", "ledger.tab.transactions": "交易", "ledger.tab.trace": "券的资金轨迹", "ledger.tab.account": "账户", "ledger.tab.books": "活动对账",
  "ledger.kind": "类型", "ledger.at": "时间", "ledger.postings": "分录", "ledger.refs": "关联", "ledger.verify": "核验", "ledger.none": "没有交易",
  "ledger.campaign_id": "活动编号", "ledger.merchant_id": "商户编号", "ledger.voucher_id": "券编号", "ledger.from": "起", "ledger.to": "止", "ledger.search": "查询",
  "ledger.more": "更多", "ledger.account": "账户", "ledger.balance": "余额", "ledger.balanced": "账目平衡", "ledger.unbalanced": "账目不平衡！",
  "kind.fund": "注资", "kind.redeem": "核销", "kind.refund": "退款", "kind.return": "退回", "kind.clawback": "追回", "kind.payout": "付款", "kind.payout_confirm": "到账", "kind.payout_reversal": "付款退回",
  "verify.title": "核验", "verify.help": "在本浏览器内用 WebCrypto 独立核验：检查点的 Ed25519 签名（用您固定的公钥）、交易的哈希，以及 RFC 6962 包含证明是否通向签名的根。不采信服务器给出的任何结论。",
  "verify.pinned": "固定的账本公钥", "verify.no_pin": "尚未固定公钥。", "verify.pin_help": "请从可信渠道获得账本公钥并粘贴固定；也可读取服务器当前公钥，与线下公布的指纹核对后再固定。公钥保存在本浏览器中。",
  "verify.fetch_key": "读取服务器公钥", "verify.fetched": "已读取，请核对指纹：", "verify.pin": "固定", "verify.unpin": "取消固定", "verify.bad_key": "不是有效的 Ed25519 公钥（32 字节 base64）",
  "verify.tx": "交易编号", "verify.tx_placeholder": "交易编号", "verify.button": "核验", "verify.pass": "✓ 核验通过：该交易在已签名的账本中", "verify.fail": "✗ 核验失败",
  "verify.no_subtle": "此页面不在安全上下文中（需要 HTTPS 或本机地址），浏览器不提供 WebCrypto。",
  "verify.step.crypto": "浏览器密码学", "verify.step.key": "固定的公钥", "verify.step.latest": "最新检查点的签名", "verify.step.tx": "交易的规范形式与哈希链",
  "verify.step.checkpoint": "证明所用检查点的签名", "verify.step.body": "签名内容（树大小与根）", "verify.step.leaf": "叶子哈希", "verify.step.path": "包含证明通向签名的根",
  "verify.sig_ok": "Ed25519 签名有效：{origin}，树大小 {size}", "verify.sig_bad": "签名与固定的公钥不符（树大小 {size}）",
  "verify.tx_ok": "第 {seq} 笔（{kind}），叶子哈希 {leaf}", "verify.chain_bad": "第 {seq} 笔的哈希与 SHA-256(prev_hash ‖ 规范形式) 不符",
  "verify.body_ok": "树大小 {size}，根 {root}", "verify.body_bad": "证明所述的树与签名内容不符", "verify.leaf_ok": "叶子 {index} 的哈希与本地计算一致",
  "verify.leaf_bad": "叶子 {index} 与本地计算的交易不符", "verify.path_ok": "经 {n} 个节点算得根 {root}，与签名的根一致", "verify.path_bad": "由证明算出的根与签名的根不符",
  "issuers.title": "发行方", "issuers.name": "名称", "issuers.region": "地区代码", "issuers.fiscal": "财政账户", "issuers.create": "登记发行方", "issuers.created": "已登记",
  "merchants.title": "商户", "merchants.name": "名称", "merchants.mcc": "行业", "merchants.tags": "标签", "merchants.wallet": "结算钱包", "merchants.save": "保存商户", "merchants.saved": "已保存",
  "merchants.suspend": "停用", "merchants.resume": "恢复", "merchants.new_key": "新建 POS 密钥", "merchants.key_for": "POS 密钥：", "merchants.secret_once": "密钥只显示这一次，请立即交给商户：",
  "merchants.merchant_id": "商户编号", "merchants.revoke": "吊销密钥", "merchants.revoked": "已吊销", "mstatus.active": "正常", "mstatus.suspended": "已停用",
  "tokens.title": "令牌", "tokens.help": "为政府、审计或运营人员签发访问令牌。令牌只显示一次，平台只保存其哈希。", "tokens.role": "角色", "tokens.issuer": "绑定发行方",
  "nav.payouts": "付款批次", "ledger.tab.statement": "商户对账单",
  "payouts.title": "付款批次", "payouts.help": "按截止时间把商户已入账的补贴汇总成一批付款指令，交银行执行；银行回执后逐笔确认到账或失败。被暂停付款的商户不在批次内。",
  "payouts.cutoff": "截止时间", "payouts.start": "生成付款批次", "payouts.items": "笔", "payouts.total": "合计", "payouts.none": "暂无付款批次",
  "payouts.file": "生成银行文件（CSV）", "payouts.download": "下载银行文件", "payouts.merchant": "商户", "payouts.amount": "金额", "payouts.reference": "参考号",
  "payouts.bank_ref": "银行流水号", "payouts.paid": "已到账", "payouts.failed": "失败退回", "payouts.status.sent": "已发送", "payouts.status.paid": "已到账", "payouts.status.failed": "失败",
  "statement.title": "商户对账单", "statement.date": "日期（北京时间）", "statement.show": "查看", "statement.opening": "期初", "statement.closing": "期末",
  "clawback.title": "追回补贴", "clawback.help": "把一笔核销仍在商户处的补贴收回资金池（活动已结束则退回出资方）。可重复提交，结果不变。", "clawback.redemption": "核销编号",
  "clawback.reason": "原因", "clawback.submit": "追回", "clawback.confirm": "确定追回这笔核销的补贴吗？", "clawback.done": "已追回 {amount}（账本交易 {tx}）",
  "merchants.hold": "暂停付款", "merchants.hold_button": "暂停付款", "merchants.release": "解除暂停", "merchants.hold_reason": "暂停付款的原因：",
  "nav.webhooks": "事件推送", "webhooks.title": "事件推送（Webhook）", "webhooks.help": "事件发生时引擎向这些地址 POST 签名的 JSON（X-VE-Signature），失败按退避重试至少 24 小时。密钥只显示一次。",
  "webhooks.events": "事件", "webhooks.pending": "待投递", "webhooks.delete": "删除", "webhooks.none": "暂无订阅", "webhooks.create": "新建订阅",
  "webhooks.secret_once": "签名密钥只显示这一次：", "webhooks.event": "事件", "webhooks.attempt": "第几次", "webhooks.no_deliveries": "暂无投递记录",
  "webhooks.outcome.delivered": "已送达", "webhooks.outcome.retrying": "重试中", "webhooks.outcome.failed": "已放弃",
  "issuers.appropriation": "拨款上限", "issuers.committed": "已承诺", "issuers.no_limit": "不限", "issuers.appropriation_yuan": "拨款上限（元）",
  "issuers.empty_no_limit": "空 = 不限", "issuers.set_appropriation": "设定拨款上限", "issuers.appropriation_set": "已设定：",
  "tokens.last_used": "最近使用", "tokens.revoked": "吊销于", "tokens.revoke": "吊销", "tokens.revoke_confirm": "吊销后此令牌立即失效。确定吗？",
  "tokens.no_issuer": "（不绑定）", "tokens.create": "签发令牌", "tokens.once": "令牌只显示这一次",
  "nav.risk": "风险核查", "risk.title": "风险核查（反欺诈）", "risk.help": "风控规则命中时开立的核查单：每单列出命中的规则、看到的数值与限值，以及涉及的核销。确认（confirm）将追回所列核销的补贴并保持暂停付款；排除（clear）将解除由此单造成的暂停付款。每个决定都记录决定人。",
  "risk.help_auditor": "审计可以查看核查单及其证据和决定，不能作出决定。", "risk.campaign": "活动编号", "risk.merchant": "商户编号", "risk.status": "状态", "risk.signal": "信号", "risk.all": "全部",
  "risk.filter": "筛选", "risk.none": "没有符合条件的核查单", "risk.opened": "开立时间", "risk.outcome": "处置", "risk.redemptions": "涉及核销", "risk.open_flag": "查看",
  "risk.status.open": "待核查", "risk.status.cleared": "已排除", "risk.status.confirmed": "已确认", "risk.outcome.flag": "标记", "risk.outcome.hold": "暂停付款", "risk.outcome.refuse": "拒绝",
  "risk.evidence": "证据", "risk.rule": "命中规则", "risk.figure": "项目", "risk.value": "值", "risk.hold_caused": "开立时暂停了该商户的付款",
  "risk.redemption": "核销编号", "risk.at": "时间", "risk.subsidy": "补贴", "risk.kind": "账本交易", "risk.not_in_ledger": "（账本中未找到）", "risk.ids_only": "运营角色不能读账本：只列核销编号。",
  "risk.decide": "作出决定", "risk.note": "说明（会与决定一并保存）", "risk.clear": "排除（无问题）", "risk.confirm": "确认（追回补贴）", "risk.confirm_ask": "确认将追回本单所列每笔核销的补贴，并保持商户暂停付款。确定吗？",
  "risk.decision": "决定", "risk.decision.clear": "已排除", "risk.decision.confirm": "已确认", "risk.decided_by": "决定人", "risk.clawbacks": "追回", "risk.released": "已解除由此单造成的暂停付款",
  "risk.back": "风险核查", "risk.signal.odd_hour": "非营业时段", "risk.signal.refund_reredeem": "退款后再核销", "risk.signal.threshold_hugging": "贴近门槛", "risk.signal.merchant_velocity": "商户核销过快",
  "risk.signal.threshold_share": "门槛订单占比", "risk.signal.exact_repeat": "金额重复", "risk.signal.pair_recurrence": "持券人与商户反复配对", "risk.signal.new_merchant_volume": "新商户突增",
  "risk.signal.holder_spread": "持券人跨商户过快", "risk.signal.claims_burst": "领券突增",
  "approval.title": "共同出资审批", "approval.column": "审批", "approval.own": "本级出资", "approval.pending": "待审批", "approval.approved": "已同意", "approval.declined": "已拒绝",
  "approval.approve": "同意出资", "approval.decline": "拒绝出资", "approval.yours": "本活动请您（{region}）出资 {amount}（{share}），请审批。", "approval.final": "活动已注资，出资决定不可再改。",
  "approval.history": "审批记录", "approval.decided_at": "时间", "approval.token": "令牌", "approval.awaiting": "待您审批", "approval.your_decision": "您的审批",
  "approval.list_column": "出资审批", "approval.others_pending": "{n} 个出资方待审批", "approval.others_declined": "{n} 个出资方已拒绝", "approval.all_approved": "出资方均已同意",
};

const en = {
  title: "Voucher engine console", brand: "Voucher engine console", signout: "Sign out", footer: "voucher-engine · e-CNY smart-contract vouchers · this page loads nothing from other hosts",
  "role.gov": "Government", "role.auditor": "Auditor", "role.admin": "Operator",
  "nav.campaigns": "Campaigns", "nav.editor": "Contract editor", "nav.ledger": "Ledger", "nav.verify": "Verify", "nav.issuers": "Issuers", "nav.merchants": "Merchants", "nav.tokens": "Tokens",
  "signin.title": "Sign in", "signin.help": "Enter the access token the platform gave you (government, auditor or operator).", "signin.token": "Access token", "signin.submit": "Sign in",
  "signin.storage": "The token is kept in this tab's session storage only: gone when the tab closes, never in a URL.", "signin.bad": "The token is unknown or revoked.",
  "signin.norole": "This token's role has no console views.", "signin.expired": "The session has ended; please sign in again.",
  "campaigns.title": "Campaigns", "campaigns.none": "No campaigns yet", "campaigns.new": "New campaign from a contract",
  "campaign.name": "Name", "campaign.status": "Status", "campaign.issuer": "Issuer", "campaign.own": "Relation", "campaign.yours": "Own", "campaign.cofunded": "Co-funded",
  "campaign.budget": "Budget", "campaign.quantity": "Quantity", "campaign.created": "Created", "campaign.id": "Campaign id", "campaign.funders": "Funders",
  "campaign.funder": "Funder", "campaign.share": "Share", "campaign.funded_part": "Funded", "campaign.terms": "Terms and validity", "campaign.contract": "Contract text",
  "status.draft": "Draft", "status.funded": "Funded", "status.active": "Active", "status.paused": "Paused", "status.closed": "Closed",
  "action.fund": "Fund (lock the budget)", "action.activate": "Activate", "action.pause": "Pause", "action.close": "Close and return the rest", "action.close_confirm": "Closing revokes unused vouchers and returns what is left to the funders. Go ahead?",
  "fig.budget": "Budget", "fig.funded": "Funded", "fig.redeemed": "Subsidy redeemed", "fig.refunded": "Back by refunds", "fig.clawed_back": "Clawed back", "fig.returned": "Returned to funders",
  "fig.outstanding": "In escrow", "fig.burn": "Burn", "fig.vouchers": "Vouchers used / issued", "fig.leverage": "Leverage ratio",
  "chart.burn_down": "Burn-down by day", "chart.spent_per_day": "Net redeemed that day", "chart.remaining": "Remaining", "chart.by_region": "Spend by region", "chart.by_mcc": "Spend by category",
  "chart.leverage": "Leverage ratio over time (cumulative)", "chart.fund_flow": "Fund flow", "chart.redeemed": "Subsidy redeemed", "chart.total_redeemed": "Redeemed in all", "chart.total_refunded": "Back by refunds in all",
  "chart.redemptions": "redemptions", "chart.orders": "Spending driven", "chart.subsidy": "Net subsidy", "chart.ratio_axis": "×",
  "flow.fiscal": "Fiscal", "flow.escrow": "Campaign escrow", "flow.merchants": "Merchants (redeemed)", "flow.returned": "Returned to funders", "flow.outstanding": "Still in escrow",
  "flow.refunded": "Refunds back to escrow", "flow.clawed_back": "Clawed back", "flow.kept": "Kept by merchants", "flow.unfunded": "Not funded yet: no money has moved.",
  "stats.as_of": "Figures include the ledger up to transaction {seq} (the ledger has {head}), updated {at}; they trail the ledger by about a second.", "stats.none": "No redemptions yet.",
  "editor.title": "Contract editor", "editor.help": "Checked as you type: errors are marked at their line and column. Try a sample payment on the right.", "editor.source": "Contract text",
  "editor.checking": "Checking…", "editor.typing": "Typing…", "editor.ok": "The contract is valid", "editor.errors": "{n} error(s)", "editor.at": "line {line}, column {column}", "editor.warning": "Warning:",
  "editor.diagnostics": "Check", "editor.field": "Field", "editor.value": "Value", "editor.create": "Create the campaign",
  "sample.title": "Sample payment", "sample.mcc": "Merchant MCC", "sample.region": "Merchant region", "sample.tags": "Merchant tags", "sample.at": "Paid at", "sample.amount": "Order (yuan)",
  "sample.holder_json": "Holder attributes (JSON, optional)", "sample.explain": "Explain", "sample.settles": "Would settle: subsidy {subsidy}, the holder pays {payable}",
  "sample.refused": "Would be refused: {code}", "sample.where": "Where", "sample.condition": "Condition", "sample.actual": "Actual", "sample.expected": "Expected",
  "sample.holder": "holder", "sample.payment": "payment", "sample.bad_amount": "Write the amount in yuan with at most two decimals, like 120.00", "sample.bad_holder": "The holder attributes are not valid JSON",
  "ledger.title": "Ledger", "ledger.tab.transactions": "Transactions", "ledger.tab.trace": "Voucher trace", "ledger.tab.account": "Account", "ledger.tab.books": "Campaign books",
  "ledger.kind": "Kind", "ledger.at": "At", "ledger.postings": "Postings", "ledger.refs": "Refs", "ledger.verify": "Verify", "ledger.none": "No transactions",
  "ledger.campaign_id": "Campaign id", "ledger.merchant_id": "Merchant id", "ledger.voucher_id": "Voucher id", "ledger.from": "From", "ledger.to": "To", "ledger.search": "Search",
  "ledger.more": "More", "ledger.account": "Account", "ledger.balance": "Balance", "ledger.balanced": "The books balance", "ledger.unbalanced": "The books do NOT balance!",
  "kind.fund": "fund", "kind.redeem": "redeem", "kind.refund": "refund", "kind.return": "return", "kind.clawback": "clawback", "kind.payout": "payout", "kind.payout_confirm": "payout confirmed", "kind.payout_reversal": "payout reversed",
  "verify.title": "Verify", "verify.help": "Checked in this browser with WebCrypto: the checkpoint's Ed25519 signature (against your pinned key), the transaction's hashes, and that its RFC 6962 inclusion proof leads to the signed root. Nothing the server says about the result is trusted.",
  "verify.pinned": "Pinned ledger key", "verify.no_pin": "No key pinned yet.", "verify.pin_help": "Paste the ledger's public key from a trusted source and pin it; or read the server's current key and compare its fingerprint with the one published out of band before pinning. The key is kept in this browser.",
  "verify.fetch_key": "Read the server's key", "verify.fetched": "Read; compare the fingerprint:", "verify.pin": "Pin", "verify.unpin": "Unpin", "verify.bad_key": "Not an Ed25519 public key (32 bytes, base64)",
  "verify.tx": "Transaction id", "verify.tx_placeholder": "transaction id", "verify.button": "Verify", "verify.pass": "✓ Verified: the transaction is in the signed ledger", "verify.fail": "✗ Verification failed",
  "verify.no_subtle": "This page is not a secure context (HTTPS or localhost needed): the browser offers no WebCrypto.",
  "verify.step.crypto": "Browser cryptography", "verify.step.key": "Pinned key", "verify.step.latest": "Latest checkpoint's signature", "verify.step.tx": "Transaction's canonical form and hash chain",
  "verify.step.checkpoint": "Signature of the proof's checkpoint", "verify.step.body": "Signed body (tree size and root)", "verify.step.leaf": "Leaf hash", "verify.step.path": "Inclusion proof leads to the signed root",
  "verify.sig_ok": "Ed25519 signature valid: {origin}, tree size {size}", "verify.sig_bad": "The signature does not match the pinned key (tree size {size})",
  "verify.tx_ok": "seq {seq} ({kind}), leaf hash {leaf}", "verify.chain_bad": "seq {seq}: hash is not SHA-256(prev_hash ‖ canonical form)",
  "verify.body_ok": "tree size {size}, root {root}", "verify.body_bad": "The proof's tree does not match the signed body", "verify.leaf_ok": "leaf {index} matches the hash computed here",
  "verify.leaf_bad": "leaf {index} does not match the transaction computed here", "verify.path_ok": "{n} nodes lead to root {root}, the signed root", "verify.path_bad": "The root computed from the proof is not the signed root",
  "issuers.title": "Issuers", "issuers.name": "Name", "issuers.region": "Region code", "issuers.fiscal": "Fiscal account", "issuers.create": "Register issuer", "issuers.created": "Registered",
  "merchants.title": "Merchants", "merchants.name": "Name", "merchants.mcc": "Category", "merchants.tags": "Tags", "merchants.wallet": "Settlement wallet", "merchants.save": "Save merchant", "merchants.saved": "Saved",
  "merchants.suspend": "Suspend", "merchants.resume": "Resume", "merchants.new_key": "New POS key", "merchants.key_for": "POS key for", "merchants.secret_once": "The secret is shown once; hand it to the merchant now:",
  "merchants.merchant_id": "Merchant id", "merchants.revoke": "Revoke key", "merchants.revoked": "Revoked", "mstatus.active": "active", "mstatus.suspended": "suspended",
  "tokens.title": "Tokens", "tokens.help": "Make access tokens for governments, auditors or operators. A token is shown once; the platform keeps only its hash.", "tokens.role": "Role", "tokens.issuer": "Bound to issuer",
  "nav.payouts": "Payout runs", "ledger.tab.statement": "Merchant statement",
  "payouts.title": "Payout runs", "payouts.help": "Gathers what merchants were credited before the cutoff into one batch of payment instructions for the bank; record the bank's answer for each item. Merchants on payout hold are left out.",
  "payouts.cutoff": "Cutoff", "payouts.start": "Start a payout run", "payouts.items": "items", "payouts.total": "Total", "payouts.none": "No payout runs yet",
  "payouts.file": "Make the bank file (CSV)", "payouts.download": "Download the bank file", "payouts.merchant": "Merchant", "payouts.amount": "Amount", "payouts.reference": "Reference",
  "payouts.bank_ref": "bank reference", "payouts.paid": "Paid", "payouts.failed": "Failed", "payouts.status.sent": "sent", "payouts.status.paid": "paid", "payouts.status.failed": "failed",
  "statement.title": "Merchant statement", "statement.date": "Day (China time)", "statement.show": "Show", "statement.opening": "Opening", "statement.closing": "Closing",
  "clawback.title": "Claw back a subsidy", "clawback.help": "Takes the subsidy still standing on one redemption back from the merchant to escrow (on to the funders if the campaign has closed). Idempotent.", "clawback.redemption": "Redemption id",
  "clawback.reason": "Reason", "clawback.submit": "Claw back", "clawback.confirm": "Claw back this redemption's subsidy?", "clawback.done": "Clawed back {amount} (ledger transaction {tx})",
  "merchants.hold": "Payout hold", "merchants.hold_button": "Hold payouts", "merchants.release": "Release", "merchants.hold_reason": "Reason for the payout hold:",
  "nav.webhooks": "Webhooks", "webhooks.title": "Webhooks", "webhooks.help": "When an event happens the engine POSTs signed JSON (X-VE-Signature) to these URLs, retrying with backoff for at least 24 hours. The secret is shown once.",
  "webhooks.events": "Events", "webhooks.pending": "Pending", "webhooks.delete": "Delete", "webhooks.none": "No subscriptions yet", "webhooks.create": "Subscribe",
  "webhooks.secret_once": "The signing secret, shown once:", "webhooks.event": "Event", "webhooks.attempt": "Attempt", "webhooks.no_deliveries": "No deliveries yet",
  "webhooks.outcome.delivered": "delivered", "webhooks.outcome.retrying": "retrying", "webhooks.outcome.failed": "given up",
  "issuers.appropriation": "Appropriation", "issuers.committed": "Committed", "issuers.no_limit": "no limit", "issuers.appropriation_yuan": "Appropriation (yuan)",
  "issuers.empty_no_limit": "empty = no limit", "issuers.set_appropriation": "Set appropriation", "issuers.appropriation_set": "Set:",
  "tokens.last_used": "Last used", "tokens.revoked": "Revoked", "tokens.revoke": "Revoke", "tokens.revoke_confirm": "The token stops working at once. Revoke it?",
  "tokens.no_issuer": "(none)", "tokens.create": "Make token", "tokens.once": "The token is shown once",
  "nav.risk": "Risk flags", "risk.title": "Risk flags (anti-fraud)", "risk.help": "Flags opened when a risk rule is met: each shows the rule, the value seen and the limit, and the redemptions it names. Confirm claws back every named redemption's subsidy and keeps the payout hold; clear releases a hold the flag caused. Every decision is kept with who made it.",
  "risk.help_auditor": "Auditors read flags, their evidence and decisions; they do not decide.", "risk.campaign": "Campaign id", "risk.merchant": "Merchant id", "risk.status": "Status", "risk.signal": "Signal", "risk.all": "all",
  "risk.filter": "Filter", "risk.none": "No flags match", "risk.opened": "Opened", "risk.outcome": "Outcome", "risk.redemptions": "Redemptions", "risk.open_flag": "Open",
  "risk.status.open": "open", "risk.status.cleared": "cleared", "risk.status.confirmed": "confirmed", "risk.outcome.flag": "flag", "risk.outcome.hold": "hold", "risk.outcome.refuse": "refuse",
  "risk.evidence": "Evidence", "risk.rule": "Rule met", "risk.figure": "Figure", "risk.value": "Value", "risk.hold_caused": "Opening it put the merchant on payout hold",
  "risk.redemption": "Redemption", "risk.at": "At", "risk.subsidy": "Subsidy", "risk.kind": "Ledger", "risk.not_in_ledger": "(not found in the ledger)", "risk.ids_only": "The operator does not read the ledger: the redemption ids only.",
  "risk.decide": "Decide", "risk.note": "Note (kept with the decision)", "risk.clear": "Clear (nothing wrong)", "risk.confirm": "Confirm (claw back)", "risk.confirm_ask": "Confirming claws back the subsidy of every redemption this flag names and keeps the merchant's payout hold. Go ahead?",
  "risk.decision": "Decision", "risk.decision.clear": "cleared", "risk.decision.confirm": "confirmed", "risk.decided_by": "Decided by", "risk.clawbacks": "Clawbacks", "risk.released": "The hold this flag caused was released",
  "risk.back": "Risk flags", "risk.signal.odd_hour": "odd hour", "risk.signal.refund_reredeem": "refund then redeem again", "risk.signal.threshold_hugging": "order hugs the threshold", "risk.signal.merchant_velocity": "merchant velocity",
  "risk.signal.threshold_share": "share of threshold orders", "risk.signal.exact_repeat": "exact repeats", "risk.signal.pair_recurrence": "holder–merchant pair recurs", "risk.signal.new_merchant_volume": "new merchant's sudden volume",
  "risk.signal.holder_spread": "holder across merchants", "risk.signal.claims_burst": "claims burst",
  "approval.title": "Co-funding approval", "approval.column": "Approval", "approval.own": "own", "approval.pending": "pending", "approval.approved": "approved", "approval.declined": "declined",
  "approval.approve": "Approve the share", "approval.decline": "Decline the share", "approval.yours": "This campaign asks you ({region}) for {amount} ({share}): please decide.", "approval.final": "The campaign is funded: consents are final.",
  "approval.history": "Decisions", "approval.decided_at": "At", "approval.token": "Token", "approval.awaiting": "awaiting your decision", "approval.your_decision": "Your approval",
  "approval.list_column": "Co-funding", "approval.others_pending": "{n} co-funder(s) pending", "approval.others_declined": "{n} co-funder(s) declined", "approval.all_approved": "co-funders all approved",
};

const WORDS = { zh, en };

// Names of common codes; any other code is shown as itself.
const REGIONS = {
  "000000": ["中央", "Central"], "310000": ["上海市", "Shanghai"], "310101": ["黄浦区", "Huangpu"], "310104": ["徐汇区", "Xuhui"],
  "310105": ["长宁区", "Changning"], "310106": ["静安区", "Jing'an"], "310107": ["普陀区", "Putuo"], "310110": ["杨浦区", "Yangpu"],
  "310115": ["浦东新区", "Pudong"], "320500": ["苏州市", "Suzhou"], "320505": ["虎丘区", "Huqiu"], "320508": ["姑苏区", "Gusu"],
  "330000": ["浙江省", "Zhejiang"], "330122": ["桐庐县", "Tonglu"], "330127": ["淳安县", "Chun'an"], "330112": ["临安区", "Lin'an"],
  "110000": ["北京市", "Beijing"], "440300": ["深圳市", "Shenzhen"], "510100": ["成都市", "Chengdu"], "420100": ["武汉市", "Wuhan"],
};
const MCCS = {
  "5812": ["餐馆", "Restaurants"], "5813": ["酒吧", "Bars"], "5814": ["快餐", "Fast food"], "5411": ["超市", "Grocery"],
  "5499": ["食品杂货", "Food stores"], "5722": ["家电", "Appliances"], "7832": ["影院", "Cinemas"], "7922": ["演出", "Theatre"],
  "7941": ["体育", "Sports"], "1520": ["住宅装修", "Home builders"], "5200": ["家居建材", "Home supply"], "5311": ["百货", "Department stores"],
};

export function lang() {
  return localStorage.getItem(LANG_KEY) === "en" ? "en" : "zh";
}

export function setLang(value) {
  localStorage.setItem(LANG_KEY, value === "en" ? "en" : "zh");
}

export function t(key, vars = {}) {
  const text = WORDS[lang()][key] ?? WORDS.zh[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

export function regionName(code) {
  const found = REGIONS[code];
  return found ? found[lang() === "zh" ? 0 : 1] : String(code);
}

export function mccName(code) {
  const found = MCCS[code];
  return found ? found[lang() === "zh" ? 0 : 1] : String(code);
}

export const KEYS = { zh: Object.keys(zh), en: Object.keys(en) };
