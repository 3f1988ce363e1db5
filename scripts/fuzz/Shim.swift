// Pieces the parsing sources use from files the fuzz harness does not compile (those import
// OpenCL): kept identical to Sources/MInferenceCL/Runtime/ComputeDevice.swift.
extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
