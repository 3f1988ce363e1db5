/// Colour of a value in [0, 1]: linear interpolation between evenly spaced control colours.
package struct Colormap: Sendable {
    package var stops: [(red: UInt8, green: UInt8, blue: UInt8)]

    /// Matplotlib's magma (perceptually uniform, black to pale yellow), sampled at nine points.
    package static let magma = Colormap(stops: [(0, 0, 4), (28, 16, 68), (79, 18, 123), (129, 37, 129), (181, 54, 122),
                                               (229, 80, 100), (251, 135, 97), (254, 194, 135), (252, 253, 191)])

    package func color(_ t: Double) -> (red: UInt8, green: UInt8, blue: UInt8) {
        let t = t.isFinite ? min(1, max(0, t)) : 0
        let x = t * Double(stops.count - 1)
        let i = min(Int(x), stops.count - 2), f = x - Double(i)
        func mix(_ a: UInt8, _ b: UInt8) -> UInt8 { UInt8((Double(a) + (Double(b) - Double(a)) * f).rounded()) }
        let a = stops[i], b = stops[i + 1]
        return (mix(a.red, b.red), mix(a.green, b.green), mix(a.blue, b.blue))
    }
}
