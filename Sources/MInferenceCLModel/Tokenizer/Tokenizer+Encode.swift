extension Tokenizer {
    /// The tokens of `text`.
    /// - Parameters:
    ///   - parseSpecial: cut control and user-defined tokens (`<|im_start|>`) out of the text
    ///     whole; when false they are spelled out as ordinary text. Default true.
    ///   - addBOS: put `bos` first; nil: `addsBOS`.
    public func encode(_ text: String, parseSpecial: Bool = true, addBOS: Bool? = nil) -> [Int32] {
        var out: [Int32] = []
        if addBOS ?? addsBOS, let bos { out.append(bos) }
        let bytes = Array(text.utf8)
        var cache: [ArraySlice<UInt8>: [Int32]] = [:]
        for fragment in fragments(bytes, parseSpecial: parseSpecial) {
            switch fragment {
            case .special(let id): out.append(id)
            case .text(let range): encodeText(bytes, range, cache: &cache, into: &out)
            }
        }
        return out
    }

    enum Fragment: Equatable {
        case text(Range<Int>)
        case special(Int32)
    }

    /// `bytes` cut at every occurrence of a special token, longest tokens first, each token
    /// looked for only in what the longer ones left (llama.cpp's `tokenizer_st_partition`).
    func fragments(_ bytes: [UInt8], parseSpecial: Bool) -> [Fragment] {
        var fragments: [Fragment] = bytes.isEmpty ? [] : [.text(0..<bytes.count)]
        guard parseSpecial else { return fragments }
        for (token, id) in specialTokens {
            var cut: [Fragment] = []
            cut.reserveCapacity(fragments.count)
            for fragment in fragments {
                guard case .text(let range) = fragment else {
                    cut.append(fragment)
                    continue
                }
                var start = range.lowerBound
                var i = range.lowerBound
                while i + token.count <= range.upperBound {
                    if bytes[i] == token[0] && bytes[i..<i + token.count].elementsEqual(token) {
                        if start < i { cut.append(.text(start..<i)) }
                        cut.append(.special(id))
                        i += token.count
                        start = i
                    } else {
                        i += 1
                    }
                }
                if start < range.upperBound { cut.append(.text(start..<range.upperBound)) }
            }
            fragments = cut
        }
        return fragments
    }

    /// Pre-tokenizes and merges `bytes[range]` (whole UTF-8 characters).
    func encodeText(_ bytes: [UInt8], _ range: Range<Int>, cache: inout [ArraySlice<UInt8>: [Int32]], into out: inout [Int32]) {
        // Scalars with the byte offset each starts at (one more at the end).
        var scalars: [Unicode.Scalar] = []
        var offsets: [Int] = []
        scalars.reserveCapacity(range.count)
        offsets.reserveCapacity(range.count + 1)
        var iterator = bytes[range].makeIterator()
        var decoder = UTF8()
        var offset = range.lowerBound
        loop: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let s):
                scalars.append(s)
                offsets.append(offset)
                offset += UTF8.width(s)
            case .emptyInput: break loop
            case .error: preconditionFailure("a Swift String's UTF-8 is valid")
            }
        }
        offsets.append(offset)
        let classes = scalars.map(ScalarClass.init)
        var words: [Range<Int>] = []
        scalars.withUnsafeBufferPointer { s in
            classes.withUnsafeBufferPointer { c in preTokenizer.split(s, classes: c, 0..<s.count, into: &words) }
        }
        for word in words {
            let wordBytes = bytes[offsets[word.lowerBound]..<offsets[word.upperBound]]
            if let cached = cache[wordBytes] {
                out += cached
                continue
            }
            var tokens: [Int32] = []
            merges.apply(wordBytes.map { byteTokens[Int($0)] }, into: &tokens)
            cache[wordBytes] = tokens
            out += tokens
        }
    }
}
