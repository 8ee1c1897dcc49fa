import { LabIcon } from '@jupyterlab/ui-components';

import firefoxSvg from '../style/icons/firefox.svg';

/** The launcher tile, tab and running-panel icon. */
export const firefoxIcon = new LabIcon({ name: 'ffsystemd:firefox', svgstr: firefoxSvg });
