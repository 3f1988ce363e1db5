/// Number formatting for reports (FoundationEssentials has no `String(format:)`).
package enum Format {
    /// `x` with `digits` digits after the point, rounded half away from zero.
    package static func fixed(_ x: Double, _ digits: Int = 2) -> String {
        guard x.isFinite else { return "\(x)" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (abs(x) * scale).rounded()
        guard scaled < 9e18 else { return "\(x)" }
        let whole = UInt64(scaled)
        let p = UInt64(scale)
        var text = "\(whole / p)"
        if digits > 0 {
            let frac = String(whole % p)
            text += "." + String(repeating: "0", count: digits - frac.count) + frac
        }
        return (x < 0 && scaled != 0 ? "-" : "") + text
    }

    /// `x` as `d.ddde±XX` with `digits` digits after the point.
    package static func scientific(_ x: Double, _ digits: Int = 2) -> String {
        guard x.isFinite else { return "\(x)" }
        if x == 0 { return fixed(0, digits) + "e+00" }
        var exponent = 0
        var m = abs(x)
        while m >= 10 { m /= 10; exponent += 1 }
        while m < 1 { m *= 10; exponent -= 1 }
        var mantissa = fixed(m, digits)
        if mantissa.hasPrefix("10") { mantissa = fixed(m / 10, digits); exponent += 1 }
        let e = abs(exponent) < 10 ? "0\(abs(exponent))" : "\(abs(exponent))"
        return (x < 0 ? "-" : "") + mantissa + "e" + (exponent < 0 ? "-" : "+") + e
    }

    /// Right-aligns `text` in `width` columns.
    package static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
    }
}
