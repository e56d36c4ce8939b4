// Money is integer fen everywhere; shown as yuan with two decimals, computed with integers (no floats).
import { lang } from "./i18n.js";

export function yuan(fen) {
  if (fen === null || fen === undefined) return "—";
  const n = BigInt(fen);
  const sign = n < 0n ? "-" : "";
  const abs = n < 0n ? -n : n;
  const whole = (abs / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const cents = (abs % 100n).toString().padStart(2, "0");
  return `${sign}¥${whole}.${cents}`;
}

export function count(n) {
  return n === null || n === undefined ? "—" : Number(n).toLocaleString(lang() === "zh" ? "zh-CN" : "en-US");
}

export function when(text) {
  if (!text) return "—";
  const d = new Date(text);
  if (Number.isNaN(d.getTime())) return String(text);
  return d.toLocaleString(lang() === "zh" ? "zh-CN" : "en-GB", { timeZone: "Asia/Shanghai", hour12: false });
}

export function day(text) {
  // Bucket starts come with their offset (+08:00): the calendar day is the text's own date part.
  return String(text).slice(0, 10);
}

export function hour(text) {
  return `${String(text).slice(5, 10)} ${String(text).slice(11, 16)}`;
}

export function ratio(numerator, denominator) {
  // Two decimals, rounded down, as the API's leverage ratio is written.
  if (!denominator || denominator <= 0) return "0.00";
  const hundredths = (BigInt(numerator) * 100n) / BigInt(denominator);
  return `${hundredths / 100n}.${(hundredths % 100n).toString().padStart(2, "0")}`;
}
