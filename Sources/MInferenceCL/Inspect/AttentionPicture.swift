import RealModule

/// The pictures of `minference-cl inspect`: a head's pooled dense attention map (log colour
/// scale) beside the covered mask of its pattern, and a grid of every head of a layer.
package enum AttentionPicture {
    /// Cells without a causal pair (above the diagonal).
    package static let background: (red: UInt8, green: UInt8, blue: UInt8) = (255, 255, 255)
    /// Covered and uncovered causal pairs in the mask; partly covered cells are mixed.
    package static let covered: (red: UInt8, green: UInt8, blue: UInt8) = (255, 190, 60)
    package static let uncovered: (red: UInt8, green: UInt8, blue: UInt8) = (36, 36, 52)
    /// White space between the two panels of a head.
    package static let gap = 8

    /// A pooled map in magma on a log scale spanning `decades` powers of ten below the map's
    /// largest cell (that cell is the brightest); cells <= 0 and NaN cells (rows that read a
    /// non-finite value) get the darkest colour, -1 the background. One pixel per cell.
    package static func heatmap(_ map: [Float], cells: Int, decades: Double) -> RGBImage {
        precondition(map.count == cells * cells, "\(map.count) values for \(cells) x \(cells) cells")
        var image = RGBImage(width: cells, height: cells, fill: background)
        let peak = Double(map.filter { !$0.isNaN }.max() ?? 0)  // Array.max() is undefined with NaN
        let top = peak > 0 ? Double.log10(peak) : 0
        for r in 0..<cells {
            for c in 0..<cells {
                let value = Double(map[r * cells + c])
                if value < 0 { continue }
                let t = value > 0 ? (Double.log10(value) - (top - decades)) / decades : 0
                image[c, r] = Colormap.magma.color(t)
            }
        }
        return image
    }

    /// A coverage map (share covered per cell, -1: no causal pair) as a mask picture.
    package static func mask(_ coverage: [Float], cells: Int) -> RGBImage {
        precondition(coverage.count == cells * cells, "\(coverage.count) values for \(cells) x \(cells) cells")
        var image = RGBImage(width: cells, height: cells, fill: background)
        func mix(_ a: UInt8, _ b: UInt8, _ f: Double) -> UInt8 { UInt8((Double(a) + (Double(b) - Double(a)) * f).rounded()) }
        for r in 0..<cells {
            for c in 0..<cells {
                let f = Double(coverage[r * cells + c])
                if f < 0 { continue }
                image[c, r] = (mix(uncovered.red, covered.red, f), mix(uncovered.green, covered.green, f), mix(uncovered.blue, covered.blue, f))
            }
        }
        return image
    }

    /// The dense map (left) beside the covered mask (right).
    package static func head(map: [Float], coverage: [Float], cells: Int, decades: Double) -> RGBImage {
        var image = RGBImage(width: 2 * cells + gap, height: cells, fill: background)
        image.draw(heatmap(map, cells: cells, decades: decades), x: 0, y: 0)
        image.draw(mask(coverage, cells: cells), x: cells + gap, y: 0)
        return image
    }

    /// Every head's pair of panels, re-pooled to `tile` x `tile` cells each, in rows of
    /// `columns` heads.
    package static func overview(maps: [[Float]], coverages: [[Float]], cells: Int, tile: Int, columns: Int, pooling: MapPooling,
                                decades: Double) -> RGBImage {
        precondition(maps.count == coverages.count && !maps.isEmpty, "one coverage per map, at least one head")
        let tile = max(1, min(tile, cells)), columns = max(1, min(columns, maps.count))
        let rows = (maps.count + columns - 1) / columns
        let pairWidth = 2 * tile + gap, spacing = 3 * gap
        var image = RGBImage(width: columns * pairWidth + (columns - 1) * spacing, height: rows * tile + (rows - 1) * spacing,
                             fill: background)
        for (h, (map, coverage)) in zip(maps, coverages).enumerated() {
            let small = head(map: repool(map, cells: cells, to: tile, maximum: pooling == .max),
                             coverage: repool(coverage, cells: cells, to: tile, maximum: false), cells: tile, decades: decades)
            image.draw(small, x: (h % columns) * (pairWidth + spacing), y: (h / columns) * (tile + spacing))
        }
        return image
    }

    /// Pools a `cells` x `cells` grid to `target` x `target` (max, or mean over the cells that
    /// hold causal pairs); a target cell with none stays -1.
    static func repool(_ grid: [Float], cells: Int, to target: Int, maximum: Bool) -> [Float] {
        guard target < cells else { return grid }
        var out = [Float](repeating: -1, count: target * target)
        for r in 0..<target {
            for c in 0..<target {
                var best: Float = -1, sum: Float = 0, count = 0
                for y in (r * cells / target)..<((r + 1) * cells / target) {
                    for x in (c * cells / target)..<((c + 1) * cells / target) where grid[y * cells + x] >= 0 {
                        best = max(best, grid[y * cells + x])
                        sum += grid[y * cells + x]
                        count += 1
                    }
                }
                if count > 0 { out[r * target + c] = maximum ? best : sum / Float(count) }
            }
        }
        return out
    }
}
