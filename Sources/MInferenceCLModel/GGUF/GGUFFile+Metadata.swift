/// Typed access to metadata. Each accessor throws `GGUFError.missingKey` for an absent key and
/// `GGUFError.wrongType` for a value of another type, naming the key; `metadata[key]` gives the
/// raw value or nil.
extension GGUFFile {
    /// - Throws: `GGUFError.missingKey`.
    public func value(_ key: String) throws -> GGUFValue {
        guard let v = metadata[key] else { throw GGUFError.missingKey(path: path, key: key) }
        return v
    }

    /// Any integer type (a UInt64 must fit in Int).
    public func int(_ key: String) throws -> Int {
        try typed(key, "an integer") { $0.int }
    }

    /// float32 or float64.
    public func double(_ key: String) throws -> Double {
        try typed(key, "a float") { $0.double }
    }

    public func string(_ key: String) throws -> String {
        try typed(key, "a string") { $0.string }
    }

    public func bool(_ key: String) throws -> Bool {
        try typed(key, "a bool") { $0.bool }
    }

    /// An array of strings.
    public func strings(_ key: String) throws -> [String] {
        try typed(key, "an array of strings") { v in
            guard case .array(.string, let values) = v else { return nil }
            return values.map { $0.string! }
        }
    }

    /// An array of any one integer type.
    public func ints(_ key: String) throws -> [Int] {
        try typed(key, "an array of integers") { v in
            guard case .array(_, let values) = v else { return nil }
            let ints = values.compactMap(\.int)
            return ints.count == values.count ? ints : nil
        }
    }

    /// An optional key: nil when absent, the typed value when present.
    /// - Throws: `GGUFError.wrongType` when present with another type.
    public func optional<T>(_ key: String, _ accessor: (GGUFFile) -> (String) throws -> T) throws -> T? {
        metadata[key] == nil ? nil : try accessor(self)(key)
    }

    private func typed<T>(_ key: String, _ expected: String, _ convert: (GGUFValue) -> T?) throws -> T {
        let v = try value(key)
        guard let t = convert(v) else {
            let found = if case .array(let e, _) = v { "an array of \(e)" } else { v.type.description }
            throw GGUFError.wrongType(path: path, key: key, expected: expected, found: found)
        }
        return t
    }
}
